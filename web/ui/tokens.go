package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetca/fleetca/enroll"
	"github.com/fleetca/fleetca/internal/fault"
	"github.com/fleetca/fleetca/store"
)

// tokenPageSize is how many tokens the tokens page lists at once.
const tokenPageSize = 50

// tokenRow is one token of the list.
type tokenRow struct {
	store.Token
	Any   bool
	State string
}

// tokensData is the tokens page's.
type tokensData struct {
	Tokens []tokenRow
	Next   string
	// Form is the mint form's values, kept when they are refused.
	Form tokenInput
}

// tokenInput is the mint form as posted.
type tokenInput struct {
	DeviceID, Pattern, TTL, Uses, Format string
	AnyDevice                            bool
}

// parseTokenForm reads the mint form: a device ID or a pattern (one of
// them), an optional TTL (Go duration) and uses, and the format (native or
// step). It checks only the form's shape; enroll checks the rest (ranges,
// the device ID's and pattern's syntax) as it does for the admin API.
func parseTokenForm(get func(string) string) (tokenInput, enroll.TokenRequest, error) {
	in := tokenInput{DeviceID: strings.TrimSpace(get("device_id")), Pattern: strings.TrimSpace(get("device_pattern")),
		TTL: strings.TrimSpace(get("ttl")), Uses: strings.TrimSpace(get("uses")), Format: get("format"), AnyDevice: get("any_device") == "on"}
	var req enroll.TokenRequest
	switch {
	case in.DeviceID == "" && in.Pattern == "":
		return in, req, fault.WithField(fault.New(fault.Malformed, "the token names neither a device ID nor a device pattern", "fill in one of Device ID and Device pattern"), "device_id")
	case in.DeviceID != "" && in.Pattern != "":
		return in, req, fault.WithField(fault.New(fault.Malformed, "the token names both a device ID and a device pattern", "fill in only one of Device ID and Device pattern"), "device_id")
	}
	req.DeviceID, req.DevicePattern, req.AnyDevice = in.DeviceID, in.Pattern, in.AnyDevice
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil {
			return in, req, fault.WithField(fault.Wrap(err, fault.Malformed, fmt.Sprintf("the TTL %q is not a duration", truncate(in.TTL)), "write it like 24h or 90m, or leave it empty for the default"), "ttl")
		}
		req.TTL = &d
	}
	if in.Uses != "" {
		n, err := strconv.Atoi(in.Uses)
		if err != nil || n < 1 {
			return in, req, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("uses %q is not a whole number of 1 or more", truncate(in.Uses)), "give how many devices the token may enroll, or leave it empty for 1"), "uses")
		}
		req.Uses = n
	}
	switch in.Format {
	case "", "native":
		in.Format = "native"
	case enroll.StepTokenFormat:
		req.Format = enroll.StepTokenFormat
	default:
		return in, req, fault.WithField(fault.New(fault.Malformed, fmt.Sprintf("the format %q is not known", truncate(in.Format)), "choose native or step"), "format")
	}
	return in, req, nil
}

// truncate shortens what a user typed for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func tokenState(t store.Token, now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case t.Spent >= t.Uses:
		return "spent"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

// tokens lists the tokens, a page at a time, with the mint form for an
// operator.
func (h *Handler) tokens(w http.ResponseWriter, r *http.Request, v view) {
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Flash = "Token revoked: it enrolls nothing more."
	}
	h.renderTokens(w, r, http.StatusOK, v, tokenInput{Format: "native"})
}

func (h *Handler) renderTokens(w http.ResponseWriter, r *http.Request, status int, v view, form tokenInput) {
	after := r.URL.Query().Get("after")
	if len(after) > 128 {
		after = ""
	}
	list, err := h.deps.Enroll.ListTokens(r.Context(), store.Page{After: after, Limit: tokenPageSize + 1})
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	d := tokensData{Form: form}
	if len(list) > tokenPageSize {
		list = list[:tokenPageSize]
		d.Next = list[tokenPageSize-1].ID
	}
	now := h.now()
	for _, t := range list {
		d.Tokens = append(d.Tokens, tokenRow{Token: t, Any: enroll.AnyDevice(t.DevicePattern), State: tokenState(t, now)})
	}
	v.Title, v.Nav, v.Data = "Tokens", "tokens", d
	h.render(w, status, "tokens", v)
}

// command is a shell command the secret page offers to copy.
type command struct {
	ID, Title, Text string
}

// secretData is the page that shows a new secret, once.
type secretData struct {
	Heading string
	What    string
	Secret  string
	Notes   []string
	Cmds    []command
	Back    string
	BackTo  string
}

// mintToken mints a token and answers its only showing: no redirect (the
// token would have to travel in a URL or be kept), no-store, and not
// logged.
func (h *Handler) mintToken(w http.ResponseWriter, r *http.Request, v view) {
	in, req, err := parseTokenForm(r.PostFormValue)
	if err == nil {
		var secret enroll.Secret
		var t store.Token
		if secret, t, err = h.deps.Enroll.CreateToken(r.Context(), req); err == nil {
			v.Title, v.Nav, v.Data = "Token "+t.ID, "tokens", h.tokenSecret(r, string(secret), t, req.Format)
			h.render(w, http.StatusCreated, "secret", v)
			return
		}
	}
	msg, status, ok := userError(err)
	if !ok {
		h.failErr(w, r, err)
		return
	}
	v.Error = msg
	h.renderTokens(w, r, status, v, in)
}

// userError is the message and status of an error the admin caused.
func userError(err error) (string, int, bool) {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return "", 0, false
	}
	status := http.StatusBadRequest
	if fe.Kind == fault.Conflict {
		status = http.StatusConflict
	} else if fe.Kind != fault.Malformed {
		return "", 0, false
	}
	msg := fe.Detail
	if fe.Hint != "" {
		msg += " (" + fe.Hint + ")"
	}
	return msg, status, true
}

// tokenSecret is the token's page: the token and the commands that enroll
// with it, against the CA the browser reached and its root's fingerprint.
func (h *Handler) tokenSecret(r *http.Request, secret string, t store.Token, format string) secretData {
	sum := sha256.Sum256(h.deps.Root().Raw)
	fp := hex.EncodeToString(sum[:])
	caURL := "https://" + r.Host
	dev, idFlag := t.DeviceID, ""
	what := "Enrolls device " + t.DeviceID
	if t.DevicePattern != "" {
		dev, idFlag = "DEVICE-ID", " --device-id DEVICE-ID"
		what = fmt.Sprintf("Enrolls up to %d new devices whose IDs match %s", t.Uses, t.DevicePattern)
	}
	what += "; expires " + t.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + "."
	d := secretData{Heading: "Token " + t.ID, What: what, Secret: secret, Back: Prefix + "tokens", BackTo: "Back to the tokens"}
	if t.DevicePattern != "" {
		d.Notes = append(d.Notes, "Replace DEVICE-ID with the device's ID; it must match "+t.DevicePattern+".")
	}
	if format == enroll.StepTokenFormat {
		d.Cmds = []command{{ID: "cmd-step", Title: "step CLI (the token carries the CA's URL and root)",
			Text: fmt.Sprintf("step ca certificate %s %s.crt %s.key --token '%s'", dev, dev, dev, secret)}}
		return d
	}
	d.Notes = append(d.Notes, "root.pem is the CA's root certificate; check that its SHA-256 is "+fp+".")
	d.Cmds = []command{
		{ID: "cmd-fleetca", Title: "fleetca enroll (trusts the CA by its root's fingerprint)",
			Text: fmt.Sprintf("fleetca enroll --ca %s \\\n    --fingerprint %s \\\n    --token '%s'%s \\\n    --key %s.key --cert %s.crt", caURL, fp, secret, idFlag, dev, dev)},
		{ID: "cmd-curl", Title: "openssl and curl",
			Text: fmt.Sprintf("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\\n    -keyout %s.key -subj /CN=%s -out %s.csr\n"+
				"curl -sS --cacert root.pem -H 'Authorization: Bearer %s' \\\n    --data-binary @%s.csr %s/v1/enroll > %s.json", dev, dev, dev, secret, dev, caURL, dev)},
	}
	return d
}

// tokenID reads a token ID from the path: hex, as enroll makes them.
func tokenID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fault.New(fault.Malformed, fmt.Sprintf("%q is not a token ID", truncate(id)), "pick a token from the tokens page")
	}
	return id, nil
}

func (h *Handler) confirmRevokeToken(w http.ResponseWriter, r *http.Request, v view) {
	id, err := tokenID(r)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	v.Title, v.Nav = "Revoke token "+id+"?", "tokens"
	v.Data = askData{Heading: v.Title, Text: "The token enrolls nothing more, however many uses it has left. Devices it enrolled keep their certificates. This cannot be undone.",
		Action: Prefix + "tokens/" + url.PathEscape(id) + "/revoke", Button: "Yes, revoke the token", Danger: true, Cancel: Prefix + "tokens", Test: "revoke-token"}
	h.render(w, http.StatusOK, "ask", v)
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, _ view) {
	id, err := tokenID(r)
	if err != nil {
		h.failErr(w, r, err)
		return
	}
	if _, err := h.deps.Enroll.RevokeToken(r.Context(), id); err != nil {
		h.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"tokens?done=revoked", http.StatusSeeOther)
}

// askData is a confirmation page: a question and the form that does it.
type askData struct {
	Heading, Text  string
	Action, Button string
	Danger         bool
	Cancel         string
	// Test names the action for the data-test-* attributes.
	Test string
}
