package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The revocation feed: GET FeedPath on the CA's HTTPS listener, with the
// query parameters below, answers a FeedResponse. It is a long-poll: the
// CA answers at once when revocations after since exist, and otherwise
// holds the request until one happens or the wait passes (at most
// FeedMaxWait), then answers with none. Verifiers (fleetca proxy, crl
// sync) follow it to learn of a revocation within a round trip; the
// signed CRL stays their fallback.
const FeedPath = "/v1/revocations"

// Query parameters of FeedPath. All are optional.
const (
	// FeedParamSince is the last seq the verifier has (decimal); the
	// answer holds the revocations after it. Default 0: the whole log.
	FeedParamSince = "since"
	// FeedParamWait is how long the CA may hold the request when nothing
	// is new, as a Go duration ("20s"); the CA honours at most
	// FeedMaxWait. Default 0: answer at once.
	FeedParamWait = "wait"
	// FeedParamLimit is the most revocations one answer holds (decimal,
	// from 1; the CA's default and maximum are its own).
	FeedParamLimit = "limit"
)

// FeedMaxWait is the longest the CA holds a feed request: longer waits are
// cut to it. It stays below the HTTPS listener's write timeout (30 s).
const FeedMaxWait = 25 * time.Second

// FeedWait is the wait a verifier asks for: below FeedMaxWait, so that the
// CA, not the verifier's deadline, ends an idle poll.
const FeedWait = 20 * time.Second

// FeedBatch is the limit a verifier asks for: a verifier catching up reads
// the log in pages much larger than an admin list's.
const FeedBatch = 10_000

// FeedEntry is one revocation in the feed, as the CRL also lists it.
type FeedEntry struct {
	// Seq is the revocation's position in the CA's revocation log: it
	// only grows.
	Seq uint64 `json:"seq"`
	// Serial is the certificate's serial, lowercase hex.
	Serial string `json:"serial"`
	// RevokedAt is the revocation time (RFC 3339, UTC, whole seconds).
	RevokedAt time.Time `json:"revoked_at"`
	// Reason is the RFC 5280 §5.3.1 reason code.
	Reason Reason `json:"reason"`
	// NotAfter is the certificate's expiry: after it, the CRL may drop the
	// entry.
	NotAfter time.Time `json:"not_after,omitzero"`
}

// FeedResponse is the body of a feed answer.
type FeedResponse struct {
	// Revocations are the revocations after since, in Seq order.
	Revocations []FeedEntry `json:"revocations"`
	// Last is the since to pass next time: the last entry's Seq, or the
	// request's since when there were none.
	Last uint64 `json:"last"`
}

// FeedURL is the URL of one feed request to the CA whose HTTPS listener
// is at base (e.g. https://ca.example:8443): the revocations after since,
// at most limit of them (0 leaves the CA's default), waiting up to wait
// (0 asks for an answer at once).
func FeedURL(base string, since uint64, limit int, wait time.Duration) string {
	q := url.Values{FeedParamSince: {strconv.FormatUint(since, 10)}}
	if limit > 0 {
		q.Set(FeedParamLimit, strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set(FeedParamWait, wait.String())
	}
	return strings.TrimRight(base, "/") + FeedPath + "?" + q.Encode()
}
