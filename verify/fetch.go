package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/internal/redact"
)

// validators are an HTTP resource's cache validators, sent back on the next
// fetch so that an unchanged CRL costs a 304 rather than its size.
type validators struct {
	etag, lastModified string
}

// fetchConditional GETs base+path (a CRL under the CA's HTTP listener)
// with v's validators (if any) and reads at most limit bytes of the
// answer. notModified reports a 304; then b is nil and the returned
// validators are v's. A 404 says which URL was expected: the usual cause
// is a base URL that is not the listener's.
func fetchConditional(ctx context.Context, client *http.Client, base, path string, v validators, limit int64) (b []byte, next validators, notModified bool, err error) {
	url := base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, v, false, fmt.Errorf("CRL URL %q: %w", redact.URL(url), err)
	}
	if v.etag != "" {
		req.Header.Set("If-None-Match", v.etag)
	}
	if v.lastModified != "" {
		req.Header.Set("If-Modified-Since", v.lastModified)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, v, false, fmt.Errorf("fetch CRL: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, v, true, nil
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, v, false, fmt.Errorf("fetch CRL %s: %s: expected %s to be the base URL of the CA's HTTP listener (such as http://ca.example:8080), which serves the device CRL at %s and the root CRL at %s",
			redact.URL(url), resp.Status, redact.URL(base), api.CRLPath, api.RootCRLPath)
	default:
		return nil, v, false, fmt.Errorf("fetch CRL %s: %s", redact.URL(url), resp.Status)
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, v, false, fmt.Errorf("fetch CRL %s: %w", redact.URL(url), err)
	}
	if int64(len(b)) > limit {
		return nil, v, false, fmt.Errorf("CRL at %s is larger than %d bytes", redact.URL(url), limit)
	}
	return b, validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, false, nil
}
