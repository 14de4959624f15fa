// Command consoleload measures the admin console's pages (web/ui) on a
// bbolt store of a million devices and three million certificates
// (issue 15's Speed section): the median server time of GET /ui/ (the
// overview), /ui/devices (its first page, and a page twenty "next" links
// deep), /ui/devices?q=<prefix> and /ui/devices/<id>, beside the 100 ms
// target.
//
// It builds the store once through the store's own code (boltstore's
// Issue, Renew and Revoke, batched, without fsync, so that its indexes
// and counters are what production writes) and keeps it in
// $XDG_CACHE_HOME/fleetca-bench (or -cache), under a name that carries
// the fleet's size and storeFormat: a later run reuses it. Each device
// enrolls at a time spread over the last 59 days and renews twice since,
// each certificate valid 30 days; one in a hundred is then revoked. The
// console runs in process (ui.New with the real boltstore, a real
// enroll.Service checking admin tokens and a real revocation.Service on a
// CA that ca.Init makes in a temporary directory) behind an
// httptest TLS server, and is logged into with a real owner token; the
// server time of a request is the time its ServeHTTP took.
//
//	go run ./consoleload                   # 1,000,000 devices (a first build takes a while)
//	go run ./consoleload -devices 20000    # a quick look
//
// Flags: -devices N, -cache DIR, -reps N (requests per page, default 30).
package main
