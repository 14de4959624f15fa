package pgstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/fleetca/fleetca/store"
)

// TestMigratePartitions: migration 6 leaves the certificates and
// revocation log entries of a version 5 database without a partition
// (they were issued before partitions), and a certificate revoked after
// it logs none either.
func TestMigratePartitions(t *testing.T) {
	dsn := databaseAt(t, 5)
	exec(t, dsn, `INSERT INTO devices (id, status, created_at, updated_at) VALUES ('dev-a', 'active', $1, $1)`, t0)
	for i := range 2 {
		exec(t, dsn, `INSERT INTO certificates (serial, device_id, key_hash, not_before, not_after, issued_at, der)
			VALUES ($1, 'dev-a', $2, $3, $4, $3, 'x')`, i+1, bytes.Repeat([]byte{byte(i)}, 32), t0, t0.Add(300*time.Hour))
	}
	if _, _, err := Migrate(t.Context(), dsn, ""); err != nil {
		t.Fatalf("Migrate error = %v", err)
	}
	s := open(t, dsn)
	certs, err := s.ListCertificates(t.Context(), "", store.Page{Limit: 10})
	if err != nil || len(certs) != 2 {
		t.Fatalf("ListCertificates after the migration = %d, %v", len(certs), err)
	}
	for _, c := range certs {
		if c.Partition != nil {
			t.Errorf("certificate %x after the migration: Partition %d, want none", c.Serial, *c.Partition)
		}
	}
	revs, err := s.Revoke(t.Context(), store.RevokeRequest{Serial: certs[0].Serial, At: t0.Add(time.Hour), Reason: 1,
		Audit: store.AuditEvent{Time: t0.Add(time.Hour), Action: "certificate.revoke", Actor: "test"}})
	if err != nil || len(revs) != 1 || revs[0].Partition != nil {
		t.Fatalf("Revoke after the migration = %+v, %v, want one entry without partition", revs, err)
	}
	if _, err := s.LatestPartitionCRL(t.Context(), 0, 0); err == nil {
		t.Error("LatestPartitionCRL(0) after the migration found a CRL, want none")
	}
}
