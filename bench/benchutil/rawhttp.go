package benchutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// ReadHead reads an HTTP/1 answer's status line and headers from br, for
// the lean load clients of the benchmarks (in the manner of wrk: requests
// serialized up front, answers read just enough to check them). length is
// the Content-Length, -1 when there is none; a Content-Length above
// maxLength is an error. keep says whether the connection stays open:
// HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive.
func ReadHead(br *bufio.Reader, maxLength int) (status, length int, keep bool, err error) {
	h, err := readHead(br, maxLength)
	if err != nil {
		return 0, 0, false, err
	}
	return h.status, h.length, h.keep, nil
}

// head is what readHead learns of an answer's status line and headers.
type head struct {
	status, length int
	keep, chunked  bool
}

// readHead is ReadHead, which also learns whether the body is chunked
// (Transfer-Encoding: chunked).
func readHead(br *bufio.Reader, maxLength int) (head, error) {
	var h head
	line, err := br.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return h, fmt.Errorf("bad status line %q", line)
	}
	h.keep = line[7] == '1'
	if h.status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return h, fmt.Errorf("bad status line %q", line)
	}
	h.length = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if h.length, err = strconv.Atoi(string(v)); err != nil || h.length < 0 || h.length > maxLength {
				return h, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			switch {
			case bytes.EqualFold(v, []byte("close")):
				h.keep = false
			case bytes.EqualFold(v, []byte("keep-alive")):
				h.keep = true
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			h.chunked = bytes.EqualFold(v, []byte("chunked"))
		}
	}
}

// ReadBody reads the body of an answer whose head ReadHead returned, into
// buf (grown if needed, reused otherwise): length bytes, or, when there is
// no Content-Length and the connection closes, up to maxLength bytes.
func ReadBody(br *bufio.Reader, buf []byte, length int, keep bool, maxLength int64) ([]byte, error) {
	switch {
	case length >= 0:
		if cap(buf) < length {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		_, err := io.ReadFull(br, buf)
		return buf, err
	case !keep:
		return io.ReadAll(io.LimitReader(br, maxLength))
	}
	return buf, errors.New("answer has neither Content-Length nor Connection: close")
}

// ReadAnswer reads a whole HTTP/1 answer from br, head (as ReadHead) and
// body, into buf (grown if needed, reused otherwise): Content-Length
// bytes; a chunked body (Transfer-Encoding: chunked, which net/http sends
// for a body of more than 2 KB whose length the handler did not set),
// decoded; or, with neither and when the connection closes, up to
// maxLength bytes. A body longer than maxLength is an error. keep says
// whether the connection stays open.
func ReadAnswer(br *bufio.Reader, buf []byte, maxLength int) (status int, body []byte, keep bool, err error) {
	h, err := readHead(br, maxLength)
	if err != nil {
		return 0, buf, false, err
	}
	if !h.chunked {
		body, err = ReadBody(br, buf, h.length, h.keep, int64(maxLength))
		return h.status, body, h.keep, err
	}
	body, err = readChunked(br, buf[:0], maxLength)
	return h.status, body, h.keep, err
}

// readChunked decodes a chunked body (RFC 9112 §7.1) from br, appending
// it to buf: chunks of a hexadecimal size line (extensions ignored), the
// data and CRLF, up to the last chunk of size 0 and the trailer section,
// whose fields are dropped.
func readChunked(br *bufio.Reader, buf []byte, maxLength int) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		sizeHex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeHex)), 16, 31)
		if err != nil {
			return buf, fmt.Errorf("bad chunk size line %q", line)
		}
		if size == 0 {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return buf, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return buf, nil
				}
			}
		}
		if len(buf)+int(size) > maxLength {
			return buf, fmt.Errorf("chunked body longer than %d bytes", maxLength)
		}
		n := len(buf)
		buf = slices.Grow(buf, int(size))[:n+int(size)]
		if _, err := io.ReadFull(br, buf[n:]); err != nil {
			return buf, err
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return buf, fmt.Errorf("chunk of %d bytes not followed by CRLF", size)
		}
	}
}
