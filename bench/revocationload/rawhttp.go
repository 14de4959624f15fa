package main

import (
	"bytes"
	"fmt"
	"net/url"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// buildPost serializes a POST of body to u with the given Content-Type.
func buildPost(u *url.URL, contentType string, body []byte) []byte {
	path := u.RequestURI()
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: revocationload\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		path, u.Host, contentType, len(body))
	b.Write(body)
	return b.Bytes()
}

// post200 sends one serialized request on c (benchutil.Conn, the lean
// client: net/http's costs more CPU per request than a cache-hit OCSP
// answer does on the server; on a machine whose cores the client shares
// with the server, that would measure the client) and returns the
// answer's body (valid until the next call) for status 200; any other
// status is an error.
func post200(c *benchutil.Conn, req []byte) ([]byte, error) {
	status, body, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("status %d: %s", status, benchutil.FirstBytes(body))
	}
	return body, nil
}
