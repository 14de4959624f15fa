package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// revokeResult is the revoke phase: one sample per revoked device.
type revokeResult struct {
	n             int
	revokeCall    []time.Duration // the admin API call itself
	deny          []time.Duration // call returned -> a new handshake refused
	firstRefused  int             // refused at the very first attempt after the call returned
	closed        []time.Duration // call returned -> the open connection closed (0 if before)
	closedEarly   int             // closed before the call returned
	denyMissed    int             // not refused within the deadline
	closeMissed   int             // not closed within the deadline
	closedNoAlert int             // refused by closing the connection without a TLS alert
	errs          []string
	poll          time.Duration
	deadline      time.Duration
	reason        string
	targetName    string
	connsVerified int
}

// closedByProxy reports whether err is the proxy closing the connection
// without a word (EOF, reset) once the TCP connection was up: a TLS 1.3
// client's handshake completes before the server has checked its
// certificate, so a proxy that refuses it after that (fleetca proxy when a
// revocation lands during the handshake) can only hang up.
func closedByProxy(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// revokeReason is sent with each revocation: superseded, which, unlike
// keyCompromise, does not also block the key (one write fewer).
const revokeReason = "superseded"

// runRevokePhase revokes the victims one at a time through the admin API,
// each with a kept-alive connection open through fleetca proxy, and times
// the refusal of a new handshake and the closing of the open connection.
func runRevokePhase(ctx context.Context, o options, e *env, logf func(string, ...any)) (*revokeResult, error) {
	res := &revokeResult{n: len(e.victims), poll: o.poll, deadline: o.deadline, reason: revokeReason, targetName: e.fleet.name}
	for i, v := range e.victims {
		// The open connection: one request on it, then a reader that
		// notes when the proxy closes it.
		kc := newConn(e.fleet, v.tls)
		if status, err := kc.do(reqKeepAlive); err != nil || status != 200 {
			return nil, fmt.Errorf("%s before its revocation: status %d, %v", v.id, status, err)
		}
		kc.NetConn().SetDeadline(time.Time{})
		closedAt := make(chan time.Time, 1)
		go func(nc net.Conn) {
			buf := make([]byte, 1)
			nc.Read(buf) // returns when the proxy closes the connection (or when we do)
			closedAt <- time.Now()
		}(kc.NetConn())
		if status, err := newConn(e.fleet, v.tls).oneShot(); err != nil || status != 200 {
			kc.Close()
			return nil, fmt.Errorf("%s: a new connection before its revocation: status %d, %v", v.id, status, err)
		}
		res.connsVerified++

		t0 := time.Now()
		serial := v.cert.SerialNumber.Text(16)
		revoked, err := e.ca.RevokeCertificate(ctx, serial, revokeReason)
		returned := time.Now()
		if err == nil && (len(revoked) != 1 || revoked[0].Serial != serial) {
			err = fmt.Errorf("the answer names %+v, want serial %s", revoked, serial)
		}
		if err != nil {
			kc.Close()
			return nil, fmt.Errorf("revoke %s: %w", v.id, err)
		}
		res.revokeCall = append(res.revokeCall, returned.Sub(t0))

		// New handshakes, every poll, until one is refused.
		c := newConn(e.fleet, v.tls)
		attempts := 0
		for {
			start := time.Now()
			status, err := c.oneShot()
			attempts++
			closed := err != nil && !refusal(status, err) && closedByProxy(err)
			if closed {
				res.closedNoAlert++
			}
			if refusal(status, err) || closed {
				res.deny = append(res.deny, time.Since(returned))
				if attempts == 1 {
					res.firstRefused++
				}
				break
			}
			if err != nil && len(res.errs) < 5 {
				res.errs = append(res.errs, fmt.Sprintf("%s: attempt %d: %v", v.id, attempts, err))
			}
			if time.Since(returned) > o.deadline {
				res.denyMissed++
				break
			}
			select {
			case <-ctx.Done():
				kc.Close()
				return nil, ctx.Err()
			case <-time.After(o.poll - time.Since(start)):
			}
		}

		// The open connection.
		left := o.deadline - time.Since(returned)
		select {
		case at := <-closedAt:
			if at.Before(returned) {
				res.closedEarly++
				res.closed = append(res.closed, 0)
			} else {
				res.closed = append(res.closed, at.Sub(returned))
			}
		case <-time.After(max(left, 0)):
			res.closeMissed++
		case <-ctx.Done():
			kc.Close()
			return nil, ctx.Err()
		}
		kc.Close()
		if (i+1)%10 == 0 || i+1 == len(e.victims) {
			logf("revoked %d of %d", i+1, len(e.victims))
		}
	}
	return res, nil
}
