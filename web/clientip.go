package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/fleetca/fleetca/internal/fault"
)

// parseTrustedProxies reads web.trusted_proxies: each entry an IP address
// (a prefix of its full length) or a CIDR prefix.
func parseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fault.WithKey(fault.Wrap(err, fault.Malformed, fmt.Sprintf("web.trusted_proxies entry %q is neither an IP address nor a CIDR prefix", e),
				"write an address like 10.0.0.7 or a prefix like 10.0.0.0/24"), "web.trusted_proxies")
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientIPExtractor returns echo's IPExtractor for these trusted proxies:
// the address of the request's client, as everything that records one (the
// request log's remote_ip, audit rows, the authentication-failure limiter)
// sees it.
//
// It is the connection's peer address, unless the peer is a trusted proxy;
// then it is the right-most address of X-Forwarded-For that is not a trusted
// proxy, walking from the peer leftwards: each proxy appends the address it
// got the request from, so only the entries written by trusted hops can be
// believed, and everything to the left of the first untrusted one may be
// the client's own invention. An entry that is not an address stops the
// walk at the trusted hop that wrote it; if every entry is trusted, the
// left-most is returned. X-Real-IP and Forwarded are never read. With no
// trusted proxies (the default) no header is read at all.
func clientIPExtractor(trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, ok := remoteAddr(r.RemoteAddr)
		if !ok {
			return r.RemoteAddr
		}
		if !isTrusted(peer) {
			return peer.String()
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		client := peer
		for i := len(hops) - 1; i >= 0; i-- {
			h := strings.TrimSpace(hops[i])
			if h == "" && len(hops) == 1 {
				break // no header
			}
			a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
			if err != nil {
				break
			}
			client = a.Unmap()
			if !isTrusted(client) {
				break
			}
		}
		return client.String()
	}
}

// limitKey is the client a failed authentication from addr (as
// clientIPExtractor returns it) counts against: an IPv4 address itself,
// an IPv6 address's /64 (RFC 6177: one site, often one host, gets a whole
// /64, so counting its addresses one by one would let it write an audit
// row and try limit tokens from each of 2^64 addresses). Anything that is
// not an address is its own key.
func limitKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Is4In6() {
		return addr
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

// remoteAddr parses http.Request.RemoteAddr ("ip:port", or a bare IP as
// tests set it), IPv4-mapped IPv6 addresses unmapped.
func remoteAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}
