package pgstore

import (
	"testing"
	"time"

	"github.com/fleetca/fleetca/internal/pgtest"
	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/storetest"
)

// A query no index answers examines at most auditScanLimit Seq values
// per call, and says where to go on.
func TestQueryAuditScanLimit(t *testing.T) {
	storetest.RunAuditScanLimit(t, func(t *testing.T, scanLimit int) store.Store {
		s := open(t, pgtest.NewDatabase(t))
		s.auditScanLimit = scanLimit
		return s
	})
}

// A database at schema version 3 (before the console) with devices and
// certificates gets, from migration 4, each device's NotAfter and RenewBy
// from its newest certificate and Stats' counts.
func TestMigrateBackfillsConsole(t *testing.T) {
	dsn := databaseAt(t, 3)
	exec(t, dsn, `INSERT INTO devices (id, status, created_at, updated_at, revoked_at) VALUES
		('dev-a', 'active', $1, $1, NULL), ('dev-r', 'revoked', $1, $1, $2), ('dev-reset', 'active', $1, $1, $2)`,
		t0, t0.Add(time.Hour))
	v := 300 * time.Hour
	for i, c := range []struct {
		device string
		issued time.Time
	}{{"dev-a", t0}, {"dev-a", t0.Add(10 * time.Minute)}, {"dev-r", t0}, {"dev-reset", t0}} {
		exec(t, dsn, `INSERT INTO certificates (serial, device_id, key_hash, not_before, not_after, issued_at, der)
			VALUES ($1, $2, $3, $4, $5, $4, 'x')`, i+1, c.device, []byte{byte(i)}, c.issued, c.issued.Add(v))
	}
	if _, _, err := Migrate(t.Context(), dsn, ""); err != nil {
		t.Fatalf("Migrate error = %v", err)
	}
	s := open(t, dsn)
	for id, issued := range map[string]time.Time{"dev-a": t0.Add(10 * time.Minute), "dev-r": t0, "dev-reset": {}} {
		d, err := s.GetDevice(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var wantNA, wantRB time.Time
		if !issued.IsZero() {
			wantNA = issued.Add(v)
			_, wantRB = store.RenewalWindow(issued, wantNA)
		}
		if !d.NotAfter.Equal(wantNA) || !d.RenewBy.Equal(wantRB) {
			t.Errorf("%s after the migration: NotAfter %v, RenewBy %v, want %v, %v", id, d.NotAfter, d.RenewBy, wantNA, wantRB)
		}
	}
	st, err := s.Stats(t.Context(), t0)
	if err != nil || st.Active != 2 || st.Revoked != 1 || st.Certificates != 4 {
		t.Errorf("Stats after the migration = %+v, %v, want 2 active, 1 revoked, 4 certificates", st, err)
	}
}
