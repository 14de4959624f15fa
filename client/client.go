package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/internal/tlsconf"
)

// MaxAnswerBytes bounds what the client reads of any answer.
const MaxAnswerBytes = 8 << 20

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// httpsHint is the hint for a CA URL that is not HTTPS.
const httpsHint = "use the CA's HTTPS listener, https://HOST:8443 by default (server.https_addr in fleetca.yaml); the HTTP listener serves only CRLs, OCSP and certificates"

// Config says which CA a Client talks to and how it proves who it is.
type Config struct {
	// URL is the CA's HTTPS listener, e.g. https://ca.example.com:8443.
	// Required; an http:// URL is refused.
	URL string
	// Roots are the only certificates trusted to anchor the CA's chain.
	// Required: from ReadRoots or Bootstrap.
	Roots []*x509.Certificate
	// AdminToken is sent as a bearer token on admin API calls; empty
	// means the client makes none.
	AdminToken string
	// Timeout bounds one request; zero means DefaultTimeout.
	Timeout time.Duration
	// Now is the clock that issued certificates are checked against; nil
	// means time.Now.
	Now func() time.Time
}

// Client calls the CA's HTTPS API. It is safe for concurrent use.
type Client struct {
	base    string
	roots   *x509.CertPool
	token   string
	http    *http.Client
	timeout time.Duration
	now     func() time.Time

	// devices are the mutual-TLS clients of Renew, by the SHA-256 of the
	// certificate they present (see deviceHTTP).
	mu      sync.Mutex
	devices map[[32]byte]*http.Client
}

// New returns a client of the CA at cfg.URL. It reads every field of cfg.
// It makes no connection; a URL that is not https:// (or has a query or
// credentials) is a Malformed fault.
func New(cfg Config) (*Client, error) {
	base, err := httpsBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Roots) == 0 {
		return nil, fault.New(fault.Malformed, "no root certificate to trust the CA with",
			"read the CA's root.pem, or bootstrap it from the root's SHA-256 fingerprint")
	}
	pool := x509.NewCertPool()
	for _, r := range cfg.Roots {
		pool.AddCert(r)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{
		base:    base,
		roots:   pool,
		token:   cfg.AdminToken,
		now:     cfg.Now,
		timeout: timeout,
		http:    newHTTPClient(pool, timeout, nil),
	}, nil
}

// newHTTPClient is an HTTP client that trusts only roots, over TLS 1.2 or
// later, and presents the certificate cert returns, if cert is not nil.
func newHTTPClient(roots *x509.CertPool, timeout time.Duration, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.CipherSuites(), GetClientCertificate: cert},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
}

// URL returns the CA's base URL, without a final slash.
func (c *Client) URL() string { return c.base }

// httpsBase checks that s is an https:// URL fit to send a secret to, and
// returns it without a final slash.
func httpsBase(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return "", fault.New(fault.Malformed, "no CA URL", httpsHint)
	case err != nil || u.Host == "":
		return "", fault.Wrap(err, fault.Malformed, fmt.Sprintf("the CA URL %q is not a URL", s), httpsHint)
	case u.Scheme != "https":
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the CA URL %s is not HTTPS: fleetca sends tokens and keys only over TLS", u.Redacted()), httpsHint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fault.New(fault.Malformed,
			fmt.Sprintf("the CA URL %s has credentials, a query or a fragment", u.Redacted()), "give only https://HOST:PORT")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// do sends a request to path (which starts with '/') and decodes a JSON
// answer into out (if not nil). in, if not nil, is sent as JSON; a []byte
// in is sent as is with contentType. bearer, if not empty, is sent as
// Authorization: Bearer. An error answer becomes a *fault.Error, with the
// answer's Retry-After in its RetryAfter.
func (c *Client) do(ctx context.Context, method, path, bearer string, in any, contentType string, out any) error {
	_, err := c.send(ctx, c.http, unreachable, method, path, bearer, in, contentType, out)
	return err
}

// send is do over hc, with failed round trips classified by failed. It
// returns the answer (its body read and closed) when one came.
func (c *Client) send(ctx context.Context, hc *http.Client, failed func(base string, err error) error,
	method, path, bearer string, in any, contentType string, out any) (*http.Response, error) {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, failed(c.base, err)
	}
	defer resp.Body.Close()
	if err := decodeAnswer(resp, out); err != nil {
		// A refusal that says when to try again (a 429, or a 503): the one
		// reading of Retry-After, into the fault just made of the answer.
		if fe, isFault := err.(*fault.Error); isFault && resp.StatusCode >= 400 {
			fe.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		}
		return resp, err
	}
	return resp, nil
}

// unreachable classifies a failed round trip to base, so that the user
// reads what went wrong and not Go's error chain.
func unreachable(base string, err error) error {
	const hint = "check the CA's URL and that fleetca serve runs there"
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var dns *net.DNSError
	switch {
	case errors.As(err, &unknown):
		return fault.Wrap(err, fault.Forbidden, "the server at "+base+" has a certificate that the trusted root did not issue",
			"check that the URL is your CA's and that the root (or fingerprint) is its root")
	case errors.As(err, &hostname):
		return fault.Wrap(err, fault.Forbidden, fmt.Sprintf("the CA's certificate is not valid for %s: it names %s", hostname.Host, certNames(hostname.Certificate)),
			"use a host name the CA's certificate names (server.dns in fleetca.yaml)")
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fault.Wrap(err, fault.Forbidden, "the CA's certificate has expired or is not valid yet, by this machine's clock",
			"check this machine's clock")
	case errors.As(err, &invalid):
		return fault.Wrap(err, fault.Forbidden, "the CA's certificate chain is not valid for a TLS server", "check that the URL is your CA's HTTPS listener")
	// net/http turns a TLS record that starts "HTTP/" into an unexported
	// error of its own, with no type to test: its text is all there is.
	case errors.As(err, &record) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fault.Wrap(err, fault.Malformed, base+" does not speak TLS: it is not the CA's HTTPS listener", httpsHint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+base+": nothing listens there", hint)
	case errors.As(err, &dns):
		return fault.Wrap(err, fault.Unavailable, fmt.Sprintf("cannot reach the CA at %s: no such host %s", base, dns.Name), "check the CA's host name and this machine's DNS")
	case isTimeout(err):
		return fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+base+": it did not answer in time", hint)
	}
	return fault.Wrap(err, fault.Unavailable, "cannot reach the CA at "+base, hint)
}

// isTimeout reports whether err is a timeout: the request's, the
// context's or the network's.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout()
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "nothing"
	}
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no host"
	}
	return strings.Join(names, ", ")
}

// decodeAnswer reads a bounded answer: JSON into out on success, a problem
// turned into a *fault.Error otherwise.
func decodeAnswer(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	if err != nil {
		return fault.Wrap(err, fault.Unavailable, "the CA's answer to "+resp.Request.URL.Path+" broke off", "try again")
	}
	if resp.StatusCode >= 300 {
		return problemError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fault.Wrap(err, fault.Malformed, "the CA's answer to "+resp.Request.URL.Path+" is not the JSON expected",
			"check that the URL is a fleetca CA of a version this client knows")
	}
	return nil
}

// problemError turns an RFC 9457 answer into the *fault.Error it stands
// for: the kind from the type URI, the detail and hint as sent, the request
// field from the pointer (fault.Error.Field). A 5xx carries its request_id
// in the hint, for the CA's operator.
func problemError(resp *http.Response, b []byte) error {
	var p api.Problem
	if json.Unmarshal(b, &p) != nil || p.Detail == "" {
		detail := fmt.Sprintf("the CA answered %s to %s %s", resp.Status, resp.Request.Method, resp.Request.URL.Path)
		switch {
		case resp.StatusCode == http.StatusTooManyRequests: // a proxy's rate limit, say
			return fault.New(fault.RateLimited, detail, "try again later")
		case resp.StatusCode < 500:
			return fault.New(fault.Malformed, detail, "check that the URL is a fleetca CA's HTTPS listener")
		}
		return fault.New(fault.Unavailable, detail, "check that the URL is a fleetca CA's HTTPS listener")
	}
	kind := fault.Unavailable // an internal error, or a type this client does not know
	if k, ok := kindOf(p.Type); ok {
		kind = k
	} else if resp.StatusCode == http.StatusTooManyRequests {
		kind = fault.RateLimited
	} else if resp.StatusCode < 500 {
		kind = fault.Malformed
	}
	hint := p.Hint
	if p.RequestID != "" && resp.StatusCode >= 500 {
		hint = strings.TrimSpace(hint + " request_id " + p.RequestID)
	}
	fe := fault.New(kind, p.Detail, hint)
	if field, ok := api.PointerField(p.Pointer); ok {
		fe.Field = field
	}
	return fe
}

// kindOf maps a problem type URI back to its fault kind.
func kindOf(typ string) (fault.Kind, bool) {
	name, ok := strings.CutPrefix(typ, api.ProblemTypePrefix)
	if !ok {
		return 0, false
	}
	for _, k := range fault.Kinds {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// maxRetryAfter bounds the wait a Retry-After header can ask for.
const maxRetryAfter = 7 * 24 * time.Hour

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): a number
// of seconds, or an HTTP date, taken relative to now. The wait is clamped
// to 0..maxRetryAfter; false (and 0) if the header is absent or neither
// form.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = maxRetryAfter
		if n < uint64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}
