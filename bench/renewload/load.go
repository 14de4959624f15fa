package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/bench/benchutil"
)

// job is one request, ready to send.
type job struct {
	id     string      // the device ID
	parent string      // a renewal's: the serial of the certificate renewed
	req    []byte      // the serialized HTTP/1.1 request
	tls    *tls.Config // a renewal over mutual TLS: the device's; else nil, the worker's
}

// ioTimeout bounds each connection's handshake and each request's answer.
const ioTimeout = 30 * time.Second

// maxBody bounds an answer's body (an enrollment answer is about 3 KB).
const maxBody = 64 << 10

// runPhase runs conc workers that send jobs, in order, to the TLS server
// at addr until d has passed (requests under way then are finished and
// counted) or the jobs run out, and measures them (benchutil.RunPhase).
// Each worker has a lean client connection (benchutil.Conn). With
// keepAlive each worker opens one connection with base before timing
// starts and sends every request on it (reopening it only if the server
// closes it); without, each request gets a new connection with the job's
// TLS configuration, or base, and a full handshake. Only 201 Created
// counts as a success: any other status, a 200 retry of a renewal
// included, is a failure. The first 201 of the phase is checked
// (checkAnswer).
func runPhase(ctx context.Context, addr string, base *tls.Config, jobs []job, conc int, keepAlive bool, d time.Duration, pid int) (benchutil.Phase, error) {
	conns := make([]*benchutil.Conn, conc)
	for w := range conns {
		conns[w] = benchutil.NewConn(addr, base, ioTimeout, maxBody)
		if keepAlive {
			if err := conns[w].Open(); err != nil {
				return benchutil.Phase{}, fmt.Errorf("open connection %d: %w", w+1, err)
			}
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	p, err := benchutil.RunPhase(ctx, pid, d, benchutil.Load{Conc: conc, Jobs: len(jobs),
		Do: func(w, i int, _ bool) ([]byte, error) {
			c, j := conns[w], jobs[i]
			if !keepAlive {
				c.Close()
				c.TLS = base
				if j.tls != nil {
					c.TLS = j.tls
				}
				defer c.Close()
			}
			status, body, err := c.Do(j.req)
			switch {
			case err != nil:
				return nil, fmt.Errorf("%s: %w", j.id, err)
			case status != 201:
				return nil, fmt.Errorf("%s: status %d: %s", j.id, status, benchutil.FirstBytes(body))
			}
			return body, nil
		},
		Check: func(i int, body []byte) error { return checkAnswer(body, jobs[i]) },
	})
	if err != nil {
		return p, err
	}
	for _, c := range conns {
		p.Dials += c.Dials
	}
	if keepAlive {
		p.Dials -= conc // the connections opened before timing
	}
	return p, nil
}

// checkAnswer checks a 201 to job j: the enrollment JSON
// (api.EnrollResponse), for j's device (benchutil.CheckEnrollment), and
// for a renewal a new certificate whose parent is the one renewed. It
// verifies no chain: that would take CPU from the server.
func checkAnswer(body []byte, j job) error {
	var r api.EnrollResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("201 body is not the enrollment JSON: %w", err)
	}
	cert, err := benchutil.ParseCertPEM([]byte(r.Certificate))
	if err != nil {
		return fmt.Errorf("201 certificate: %w", err)
	}
	if err := benchutil.CheckEnrollment(r, cert, j.id); err != nil {
		return err
	}
	switch {
	case j.parent == "" && r.ParentSerial != "":
		return fmt.Errorf("an enrollment answered with parent_serial %q", r.ParentSerial)
	case j.parent != "" && r.ParentSerial != j.parent:
		return fmt.Errorf("renewed %s, got parent_serial %q", j.parent, r.ParentSerial)
	case j.parent != "" && r.Serial == j.parent:
		return fmt.Errorf("renewing %s answered the same certificate", j.parent)
	}
	return nil
}
