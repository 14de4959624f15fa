package backend

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

func TestValidSerial(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8*MaxSerialBytes), big.NewInt(1))
	tests := []struct {
		name string
		n    *big.Int
		want bool
	}{
		{"nil", nil, false},
		{"zero", big.NewInt(0), false},
		{"negative", big.NewInt(-1), false},
		{"one", big.NewInt(1), true},
		{"255-bytes", max, true},
		{"256-bytes", new(big.Int).Add(max, big.NewInt(1)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidSerial(tc.n); got != tc.want {
				t.Errorf("ValidSerial(%v) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func TestCheckRevoke(t *testing.T) {
	tests := []struct {
		name    string
		r       store.RevokeRequest
		wantErr string // "" for none
		wrapped string // what wrap makes of an error "x"
	}{
		{"serial", store.RevokeRequest{Serial: big.NewInt(0x1f), At: t0}, "", "revoke certificate 1f: x"},
		{"device", store.RevokeRequest{DeviceID: "d-1", At: t0}, "", `revoke device "d-1": x`},
		{"both", store.RevokeRequest{Serial: big.NewInt(1), DeviceID: "d-1", At: t0},
			`revoke certificate 1 of device "d-1": set a serial or a device ID, not both`, ""},
		{"neither", store.RevokeRequest{At: t0}, "revoke: a serial or a device ID is required", ""},
		{"zero-at", store.RevokeRequest{DeviceID: "d-1"}, `revoke device "d-1": revocation time is required`, ""},
		// A serial no store holds is not an argument error: it is never found.
		{"zero-serial", store.RevokeRequest{Serial: big.NewInt(0), At: t0}, "", "revoke certificate 0: x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wrap, err := CheckRevoke(tc.r)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("CheckRevoke error = %v, want %q", err, tc.wantErr)
				}
				if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
					t.Errorf("CheckRevoke error %v wraps a sentinel, want none", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckRevoke error = %v, want nil", err)
			}
			if got := wrap(errors.New("x")).Error(); got != tc.wrapped {
				t.Errorf("wrap(x) = %q, want %q", got, tc.wrapped)
			}
		})
	}
}

// validRenewal is a renewal with every required field.
func validRenewal() store.Renewal {
	return store.Renewal{
		Parent: big.NewInt(1),
		Now:    t0,
		Certificate: store.Certificate{
			Serial: big.NewInt(2), DeviceID: "d-1", KeyHash: store.KeyHash{1},
			NotAfter: t0.Add(time.Hour), IssuedAt: t0, DER: []byte{1},
		},
	}
}

func TestCheckRenewal(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(r *store.Renewal)
		wantErr string // a part of the error; "" for none
	}{
		{"valid", func(*store.Renewal) {}, ""},
		{"no-parent", func(r *store.Renewal) { r.Parent = nil }, "parent serial is required"},
		{"no-now", func(r *store.Renewal) { r.Now = time.Time{} }, "renewal time is required"},
		{"no-serial", func(r *store.Renewal) { r.Certificate.Serial = nil }, "certificate serial is required"},
		{"zero-serial", func(r *store.Renewal) { r.Certificate.Serial = big.NewInt(0) }, "not positive"},
		{"long-serial", func(r *store.Renewal) { r.Certificate.Serial = new(big.Int).Lsh(big.NewInt(1), 8*MaxSerialBytes) }, "longer than 255 bytes"},
		{"no-device", func(r *store.Renewal) { r.Certificate.DeviceID = "" }, "certificate device ID is required"},
		{"no-key", func(r *store.Renewal) { r.Certificate.KeyHash = store.KeyHash{} }, "certificate key hash is required"},
		{"no-not-after", func(r *store.Renewal) { r.Certificate.NotAfter = time.Time{} }, "certificate not-after time is required"},
		{"no-issued-at", func(r *store.Renewal) { r.Certificate.IssuedAt = time.Time{} }, "certificate issued-at time is required"},
		{"no-der", func(r *store.Renewal) { r.Certificate.DER = nil }, "certificate DER is required"},
		// A parent no store holds is not an argument error: it is never found.
		{"zero-parent", func(r *store.Renewal) { r.Parent = big.NewInt(0) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRenewal()
			tc.edit(&r)
			err := CheckRenewal(r)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckRenewal error = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckRenewal error = %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckIssuance(t *testing.T) {
	valid := func() store.Issuance {
		r := validRenewal()
		return store.Issuance{Certificate: r.Certificate, Now: r.Now}
	}
	tests := []struct {
		name    string
		edit    func(is *store.Issuance)
		wantErr string // a part of the error; "" for none
	}{
		{"valid", func(*store.Issuance) {}, ""},
		{"valid-parent", func(is *store.Issuance) { is.Certificate.Parent = big.NewInt(7) }, ""},
		{"no-serial", func(is *store.Issuance) { is.Certificate.Serial = nil }, "certificate serial is required"},
		{"zero-serial", func(is *store.Issuance) { is.Certificate.Serial = big.NewInt(0) }, "not positive"},
		{"long-serial", func(is *store.Issuance) { is.Certificate.Serial = new(big.Int).Lsh(big.NewInt(1), 8*MaxSerialBytes) }, "longer than 255 bytes"},
		{"no-device", func(is *store.Issuance) { is.Certificate.DeviceID = "" }, "certificate device ID is required"},
		{"nul-device", func(is *store.Issuance) { is.Certificate.DeviceID = "dev\x00x" }, "NUL byte"},
		{"no-key", func(is *store.Issuance) { is.Certificate.KeyHash = store.KeyHash{} }, "certificate key hash is required"},
		{"no-not-after", func(is *store.Issuance) { is.Certificate.NotAfter = time.Time{} }, "certificate not-after time is required"},
		{"no-der", func(is *store.Issuance) { is.Certificate.DER = nil }, "certificate DER is required"},
		{"negative-parent", func(is *store.Issuance) { is.Certificate.Parent = big.NewInt(-1) }, "parent serial -1 is not positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := valid()
			tc.edit(&is)
			err := CheckIssuance(is)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckIssuance error = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckIssuance error = %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckTokens(t *testing.T) {
	tok := store.Token{ID: "t-1"}
	tests := []struct {
		name    string
		ts      []store.Token
		audits  []store.AuditEvent
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"one", []store.Token{tok}, make([]store.AuditEvent, 1), ""},
		{"too-few-audits", []store.Token{tok, tok}, make([]store.AuditEvent, 1), "2 tokens but 1 audit events"},
		{"no-id", []store.Token{tok, {}}, make([]store.AuditEvent, 2), "token ID is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTokens(tc.ts, tc.audits)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckTokens error = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("CheckTokens error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
