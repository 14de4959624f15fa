package fastpath

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// What the fast path does with a request it took: build the upstream
// request as ReverseProxy's Rewrite and http.Request.Write would, send it
// over the Transport, and write the answer as ReverseProxy and
// http.Server's ResponseWriter would (see doc.go for the list).

// proxy sends h.rh upstream and writes the answer. It returns the status
// for Served and whether the connection may go on.
func (h *conn) proxy() (status int, keep bool) {
	h.buildUpstreamHeader()
	resp, err := h.s.t.do(h.c.Context, h.s.request(h.rh.method), h.writeUpstream, h.write1xx)
	if err != nil {
		return h.upstreamFailed(err)
	}
	return h.writeResponse(resp)
}

// hopHeaders are the hop-by-hop headers ReverseProxy removes both ways,
// besides those named in Connection.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// buildUpstreamHeader sets h.out and h.ua from h.rh, as ReverseProxy's
// Rewrite (the proxy's: SetURL, SetXForwarded, the identity headers) and
// http.Request.Write would.
func (h *conn) buildUpstreamHeader() {
	rh := &h.rh
	h.connNames = h.connNames[:0]
	trailers, pragmaNoCache, pragmaSeen, cacheControl := false, false, false, false
	for _, f := range rh.fields {
		switch f.Name {
		case "Connection":
			for name := range strings.SplitSeq(f.Value, ",") {
				if name = textproto.TrimString(name); name != "" {
					h.connNames = append(h.connNames, http.CanonicalHeaderKey(name))
				}
			}
		case "Te":
			trailers = trailers || httpguts.HeaderValuesContainsToken([]string{f.Value}, "trailers")
		case "Pragma":
			if !pragmaSeen {
				pragmaSeen, pragmaNoCache = true, f.Value == "no-cache"
			}
		case "Cache-Control":
			cacheControl = true
		}
	}
	out := h.out[:0]
	h.ua = ""
	uaSeen := false
	keepField := func(name string) bool {
		switch name {
		case "Host", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			return false
		}
		if name == "Authorization" && h.c.Authorize != nil {
			return false
		}
		return !slices.Contains(hopHeaders, name) && !slices.Contains(h.connNames, name) && !h.s.cfg.OwnHeader(name)
	}
	for _, f := range rh.fields {
		if !keepField(f.Name) {
			continue
		}
		if f.Name == "User-Agent" {
			if !uaSeen {
				uaSeen, h.ua = true, f.Value
			}
			continue
		}
		out = append(out, f)
	}
	// http.Server adds it when reading the request (fixPragmaCacheControl),
	// before ReverseProxy removes hop-by-hop headers.
	if pragmaNoCache && !cacheControl && keepField("Cache-Control") {
		out = append(out, Field{"Cache-Control", "no-cache"})
	}
	if trailers {
		out = append(out, Field{"Te", "trailers"})
	}
	if h.clientIP != "" {
		out = append(out, Field{"X-Forwarded-For", h.clientIP})
	}
	out = append(out, Field{"X-Forwarded-Host", rh.host}, Field{"X-Forwarded-Proto", "https"})
	out = append(out, h.header...)
	slices.SortStableFunc(out, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	h.out = out
}

// writeUpstream writes the upstream request, as http.Request.Write writes
// ReverseProxy's outgoing request: the request line, Host, User-Agent,
// then the other headers sorted. A body-less request has no
// Content-Length (Request.Write sends none when Body is nil).
func (h *conn) writeUpstream(w io.Writer) error {
	bw := w.(*bufio.Writer)
	bw.WriteString(h.rh.method)
	bw.WriteByte(' ')
	bw.WriteString(h.s.prefix)
	bw.WriteString(h.rh.path)
	bw.WriteString(h.rh.query)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(h.s.host)
	bw.WriteString("\r\n")
	if h.ua != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(h.ua)
		bw.WriteString("\r\n")
	}
	for _, f := range h.out {
		bw.WriteString(f.Name)
		bw.WriteString(": ")
		bw.WriteString(f.Value)
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// write1xx passes an informational answer on, as ReverseProxy and
// http.Server do: all its headers but Content-Length and
// Transfer-Encoding, flushed at once. A write error shows later.
func (h *conn) write1xx(code int, hdr textproto.MIMEHeader) error {
	h.writeStatusLine(code)
	h.writeHeader(http.Header(hdr), "Content-Length", "Transfer-Encoding")
	h.bw.WriteString("\r\n")
	h.bw.Flush()
	return nil
}

// writeStatusLine writes the status line as http.Server does: Go's reason
// phrase, not the upstream's.
func (h *conn) writeStatusLine(code int) {
	var b [64]byte
	line := append(b[:0], "HTTP/1.1 "...)
	line = strconv.AppendInt(line, int64(code), 10)
	if text := http.StatusText(code); text != "" {
		line = append(line, ' ')
		line = append(line, text...)
	} else {
		line = append(line, " status code "...)
		line = strconv.AppendInt(line, int64(code), 10)
	}
	h.bw.Write(append(line, "\r\n"...))
}

// writeHeader writes hdr sorted by name, as http.Header.WriteSubset does,
// without the names in exclude (and without invalid names, which
// WriteSubset drops). Values read by http.ReadResponse need no cleaning.
func (h *conn) writeHeader(hdr http.Header, exclude ...string) {
	var buf [32]string
	keys := buf[:0]
	for k := range hdr {
		if !slices.Contains(exclude, k) && httpguts.ValidHeaderFieldName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			h.bw.WriteString(k)
			h.bw.WriteString(": ")
			h.bw.WriteString(v)
			h.bw.WriteString("\r\n")
		}
	}
}

// removeHopByHop removes from hdr the headers named in its Connection
// headers and the hop-by-hop ones, as ReverseProxy does to an answer.
func removeHopByHop(hdr http.Header) {
	for _, f := range hdr["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				hdr.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(hdr, name)
	}
}

// bodyAllowed reports whether an answer with status code may have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199) && code != http.StatusNoContent && code != http.StatusNotModified
}

// writeResponse writes the upstream's answer to the client, as
// ReverseProxy and http.Server's ResponseWriter would. It returns the
// status and whether the connection may go on.
func (h *conn) writeResponse(resp *http.Response) (int, bool) {
	defer resp.Body.Close()
	code := resp.StatusCode
	if code < 100 {
		return h.upstreamFailed(errors.New("proxy: upstream answered with a status code below 100"))
	}
	hdr := resp.Header
	removeHopByHop(hdr)
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		hdr.Add("Trailer", strings.Join(keys, ", "))
	}
	// http.Server drops a Content-Length it cannot use; http.ReadResponse
	// leaves one unchecked where no body is expected.
	if cl := hdr.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n < 0 {
			hdr.Del("Content-Length")
		}
	}
	hasBody := bodyAllowed(code) && h.rh.method != http.MethodHead
	switch code {
	case http.StatusNotModified:
		delete(hdr, "Content-Type")
		fallthrough
	case http.StatusNoContent:
		delete(hdr, "Content-Length")
	}
	closeAfter := h.rh.close || h.s.track.draining.Load()

	// ReverseProxy flushes every write of a body of unknown length (then
	// chunked) or of text/event-stream; otherwise http.Server sniffs a
	// missing Content-Type from the first bytes.
	chunked := hasBody && resp.ContentLength < 0
	flushEach := chunked
	sniffed, contentType := 0, ""
	if hasBody && !chunked {
		ct, haveType := hdr["Content-Type"]
		if haveType && len(ct) > 0 && strings.Contains(ct[0], "event-stream") {
			base, _, _ := mime.ParseMediaType(ct[0])
			flushEach = base == "text/event-stream"
		}
		if !haveType && hdr.Get("Content-Encoding") == "" && resp.ContentLength > 0 {
			n, err := io.ReadFull(resp.Body, h.sniff[:min(sniffLen, resp.ContentLength)])
			if err != nil {
				// Nothing written yet: the slow path drops the connection
				// too (ReverseProxy's http.ErrAbortHandler).
				h.s.log.LogAttrs(h.c.Context, slog.LevelDebug, "upstream body failed", slog.String("upstream", h.s.upstreamLog), slog.Any("err", err))
				return code, false
			}
			sniffed, contentType = n, http.DetectContentType(h.sniff[:n])
		}
	}

	h.writeStatusLine(code)
	h.writeHeader(hdr)
	if _, ok := hdr["Date"]; !ok {
		var b [64]byte
		h.bw.WriteString("Date: ")
		h.bw.Write(time.Now().UTC().AppendFormat(b[:0], http.TimeFormat))
		h.bw.WriteString("\r\n")
	}
	if contentType != "" {
		h.bw.WriteString("Content-Type: ")
		h.bw.WriteString(contentType)
		h.bw.WriteString("\r\n")
	}
	if closeAfter {
		h.bw.WriteString("Connection: close\r\n")
	}
	if chunked {
		h.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	h.bw.WriteString("\r\n")
	if !hasBody {
		return code, h.bw.Flush() == nil && !closeAfter
	}
	if flushEach {
		if h.bw.Flush() != nil {
			return code, false
		}
	}
	h.bw.Write(h.sniff[:sniffed])
	var err error
	if flushEach {
		err = h.copyFlushing(resp, chunked)
	} else {
		_, err = h.bw.ReadFrom(resp.Body)
	}
	if err != nil {
		// The client sees a truncated answer and the connection closed,
		// as after ReverseProxy's http.ErrAbortHandler.
		h.bw.Flush()
		h.s.log.LogAttrs(h.c.Context, slog.LevelDebug, "copying the answer failed", slog.String("upstream", h.s.upstreamLog), slog.Any("err", err))
		return code, false
	}
	return code, h.bw.Flush() == nil && !closeAfter
}

// copyFlushing copies resp's body, flushing each read, in chunks if
// chunked, then the last chunk and the trailers.
func (h *conn) copyFlushing(resp *http.Response, chunked bool) error {
	buf := h.s.buffers.Get()
	defer h.s.buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if chunked {
				var b [20]byte
				h.bw.Write(append(strconv.AppendInt(b[:0], int64(n), 16), "\r\n"...))
			}
			h.bw.Write(buf[:n])
			if chunked {
				h.bw.WriteString("\r\n")
			}
			if err := h.bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !chunked {
		return nil
	}
	resp.Body.Close() // fills resp.Trailer
	h.bw.WriteString("0\r\n")
	trailer := http.Header{}
	for k, vv := range resp.Trailer {
		if httpguts.ValidTrailerHeader(k) {
			trailer[k] = vv
		}
	}
	h.writeHeader(trailer)
	h.bw.WriteString("\r\n")
	return nil
}

// upstreamFailed answers a request the upstream could not, as the
// proxy's ReverseProxy ErrorHandler does: 504 if it timed out, 502
// otherwise, with a short plain body; and tells UpstreamFailed why. A
// request whose client connection was closed (revocation, shutdown) gets
// no answer.
func (h *conn) upstreamFailed(err error) (int, bool) {
	status := http.StatusBadGateway
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	abandoned := h.c.Context.Err() != nil
	h.s.upstreamFailed(h.c, Request{Method: h.rh.method, Path: h.rh.path, Start: h.start, Status: status}, err, abandoned)
	if abandoned {
		return status, false
	}
	body := http.StatusText(status) + "\n"
	h.writeStatusLine(status)
	h.bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: ")
	var b [64]byte
	h.bw.Write(time.Now().UTC().AppendFormat(b[:0], http.TimeFormat))
	h.bw.WriteString("\r\nContent-Length: ")
	h.bw.WriteString(strconv.Itoa(len(body)))
	h.bw.WriteString("\r\n")
	closeAfter := h.rh.close || h.s.track.draining.Load()
	if closeAfter {
		h.bw.WriteString("Connection: close\r\n")
	}
	h.bw.WriteString("\r\n")
	h.bw.WriteString(body)
	return status, h.bw.Flush() == nil && !closeAfter
}
