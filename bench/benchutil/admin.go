package benchutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// AdminCall sends a JSON request with the admin token to the CA's HTTPS
// listener at baseURL and decodes a JSON answer of at most maxAnswer bytes
// into out (if not nil); any status but want is an error.
func AdminCall(ctx context.Context, client *http.Client, baseURL, token, method, path string, body any, want int, out any, maxAnswer int64) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		head := bytes.TrimSpace(b)
		if len(head) > 200 {
			head = head[:200]
		}
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, head)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
