package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fleetca/fleetca/bench/benchutil"
)

// maxAnswer bounds an enrollment answer the load client reads.
const maxAnswer = 1 << 20

// sender sends one server's enrollments for a level. With proto h1 it is
// a lean HTTP/1.1 client in the manner of wrk: one keep-alive TLS
// connection per worker (benchutil.Conn), each request written from a
// buffer in one write, the answer read just enough to check its status
// and length, so that the load generator, on the same two cores, takes as
// little CPU from the server as it can (net/http's client took about 75
// µs per enrollment). With proto h2 it is net/http's client, every worker
// multiplexed on one connection.
type sender struct {
	host, path string
	client     *http.Client      // h2
	conns      []*benchutil.Conn // h1: worker w's connection
	bufs       [][]byte          // h1: worker w's request buffer
}

// newSender returns a sender to rawURL (https, trusting roots) for conc
// workers.
func newSender(rawURL string, roots []*x509.Certificate, conc int, proto string) (*sender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	s := &sender{host: u.Host, path: u.EscapedPath()}
	if proto == "h2" {
		s.client = benchutil.NewClient(roots, conc, proto)
		return s, nil
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	for range conc {
		s.conns = append(s.conns, benchutil.NewConn(u.Host, cfg, 30*time.Second, maxAnswer))
		s.bufs = append(s.bufs, make([]byte, 0, 4<<10))
	}
	return s, nil
}

// post sends r on worker w's connection. An answer other than k's success
// status is an error carrying the status and the start of the body. The
// body of a success is returned when keep is set, valid until w's next
// post.
func (s *sender) post(ctx context.Context, w int, k clientKind, r request, keep bool) ([]byte, error) {
	if s.client != nil {
		return benchutil.Post(ctx, s.client, "https://"+s.host+s.path, r.contentType, r.auth, r.body, k.status, keep)
	}
	b := s.bufs[w][:0]
	b = append(b, "POST "...)
	b = append(b, s.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, s.host...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, r.contentType...)
	if r.auth != "" {
		b = append(b, "\r\nAuthorization: "...)
		b = append(b, r.auth...)
	}
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, r.body...)
	s.bufs[w] = b
	status, body, err := s.conns[w].Do(b)
	switch {
	case err != nil:
		return nil, err
	case status != k.status:
		return nil, fmt.Errorf("status %d: %s", status, benchutil.FirstBytes(body))
	case !keep:
		return nil, nil
	}
	return body, nil
}

// reopen opens each worker's connection afresh, outside the timed phase:
// a server closes idle connections (step-ca does while fleetca's phases
// run), and a POST that meets a closed connection is not retried.
func (s *sender) reopen() error {
	for _, c := range s.conns {
		c.Close()
		if err := c.Open(); err != nil {
			return err
		}
	}
	return nil
}

// close closes the sender's connections.
func (s *sender) close() {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	for _, c := range s.conns {
		c.Close()
	}
}
