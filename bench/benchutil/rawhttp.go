package benchutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ReadHead reads an HTTP/1 answer's status line and headers from br, for
// the lean load clients of the benchmarks (in the manner of wrk: requests
// serialized up front, answers read just enough to check them). length is
// the Content-Length, -1 when there is none; a Content-Length above
// maxLength is an error. keep says whether the connection stays open:
// HTTP/1.1 without Connection: close, or HTTP/1.0 with keep-alive.
func ReadHead(br *bufio.Reader, maxLength int) (status, length int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = line[7] == '1'
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	length = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return status, length, keep, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 || length > maxLength {
				return 0, 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			switch {
			case bytes.EqualFold(v, []byte("close")):
				keep = false
			case bytes.EqualFold(v, []byte("keep-alive")):
				keep = true
			}
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
