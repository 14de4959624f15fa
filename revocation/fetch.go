package revocation

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// validators are an HTTP resource's cache validators, sent back on the next
// fetch so that an unchanged CRL costs a 304 rather than its size.
type validators struct {
	etag, lastModified string
}

// fetchConditional GETs url with v's validators (if any) and reads at most
// limit bytes of the answer. notModified reports a 304; then b is nil and
// the returned validators are v's.
func fetchConditional(ctx context.Context, client *http.Client, url string, v validators, limit int64) (b []byte, next validators, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, v, false, fmt.Errorf("CRL URL %q: %w", redactURL(url), err)
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
	default:
		return nil, v, false, fmt.Errorf("fetch CRL %s: %s", redactURL(url), resp.Status)
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, v, false, fmt.Errorf("fetch CRL %s: %w", redactURL(url), err)
	}
	if int64(len(b)) > limit {
		return nil, v, false, fmt.Errorf("CRL at %s is larger than %d bytes", redactURL(url), limit)
	}
	return b, validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, false, nil
}
