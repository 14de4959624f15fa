package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// rawPoster is a lean HTTP/1.1 client for one worker, in the manner of
// wrk: the requests are serialized once, up front; it keeps one connection
// while the server allows keep-alive and opens a new one when the server
// closes it (HTTP/1.0, or Connection: close). It reads just enough of an
// answer to check it: the status, Content-Length, Connection, the body.
// net/http's client costs more CPU per request than a cache-hit OCSP
// answer does on the server; on a machine whose cores the client shares
// with the server, that would measure the client.
type rawPoster struct {
	addr  string
	conn  net.Conn
	br    *bufio.Reader
	body  []byte // the last answer's body; reused
	dials int
}

// buildPost serializes a POST of body to u with the given Content-Type.
func buildPost(u *url.URL, contentType string, body []byte) []byte {
	path := u.RequestURI()
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: revocationload\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		path, u.Host, contentType, len(body))
	b.Write(body)
	return b.Bytes()
}

// do sends one serialized request and returns the answer's body (valid
// until the next call) for status 200; any other status is an error.
func (p *rawPoster) do(req []byte, timeout time.Duration) ([]byte, error) {
	if p.conn == nil {
		c, err := net.DialTimeout("tcp", p.addr, timeout)
		if err != nil {
			return nil, err
		}
		p.dials++
		p.conn = c
		if p.br == nil {
			p.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			p.br.Reset(c)
		}
	}
	_ = p.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := p.conn.Write(req); err != nil {
		p.close()
		return nil, err
	}
	status, length, keep, err := benchutil.ReadHead(p.br, maxOCSPAnswer)
	if err != nil {
		p.close()
		return nil, err
	}
	p.body, err = benchutil.ReadBody(p.br, p.body, length, keep, int64(maxOCSPAnswer))
	if err != nil || !keep {
		p.close()
	}
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("status %d: %s", status, firstBytes(p.body))
	}
	return p.body, nil
}

func (p *rawPoster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}
