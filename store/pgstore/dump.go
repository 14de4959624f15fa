package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

var (
	_ store.Dumper = (*Store)(nil)
	_ store.Loader = (*Store)(nil)
)

// loadChunk is how many rows Load sends in one COPY.
const loadChunk = 5000

// Dump calls fn with every record, read in one REPEATABLE READ, read-only
// transaction (one snapshot; writers go on meanwhile), in the order
// store.Dumper documents. Rows are streamed: fn runs while the query's
// rows arrive, so a dump of a million devices is never in memory whole.
func (s *Store) Dump(ctx context.Context, fn func(store.Record) error) error {
	err := s.snapshot(ctx, func(tx pgx.Tx) error { return dumpTx(ctx, tx, fn) })
	if err != nil {
		return fmt.Errorf("dump store: %w", err)
	}
	return nil
}

// Counts returns how many records of each kind Dump gives, counted by
// the database in one snapshot.
func (s *Store) Counts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{}
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		clear(counts)
		for _, q := range []struct{ kind, sql string }{
			{"manufacturer", "SELECT count(*) FROM manufacturers"},
			{"admin", "SELECT count(*) FROM admins"},
			{"device", "SELECT count(*) FROM devices"},
			{"certificate", "SELECT count(*) FROM certificates"},
			{"manufacturer_use", "SELECT count(*) FROM mfr_certs"},
			{"token", "SELECT count(*) FROM tokens"},
			{"revocation", "SELECT count(*) FROM revocations"},
			{"blocked_key", "SELECT count(*) FROM blocked_keys"},
			{"nonce", "SELECT count(*) FROM nonces"},
			{"audit", "SELECT count(*) FROM audit"},
			{"checkpoint", "SELECT count(*) FROM audit_checkpoints"},
			{"counter", "SELECT count(*) FROM counters"},
			{"meta", "SELECT count(*) FROM meta"},
			{"fleet_renew_now", "SELECT count(renew_now_at) FROM fleet"},
			{"crl", "SELECT count(*) FROM crl_latest"},
		} {
			var n int64
			if err := tx.QueryRow(ctx, q.sql).Scan(&n); err != nil {
				return fmt.Errorf("count %s records: %w", q.kind, err)
			}
			if n > 0 {
				counts[q.kind] = n
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count records: %w", err)
	}
	return counts, nil
}

// snapshot runs fn in a read-only REPEATABLE READ transaction: every
// statement sees the database as of the first.
func (s *Store) snapshot(ctx context.Context, fn func(pgx.Tx) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return s.dbError(ctx, err)
}

// dumpTx is Dump's body.
func dumpTx(ctx context.Context, tx pgx.Tx, fn func(store.Record) error) error {
	each := func(kind, sql string, scan func(pgx.Row) (store.Record, error)) error {
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			return fmt.Errorf("%s records: %w", kind, err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return fmt.Errorf("%s record: %w", kind, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	steps := []struct {
		kind, sql string
		scan      func(pgx.Row) (store.Record, error)
	}{
		{"manufacturer", "SELECT name, ca_pem, device_id_from, device_pattern, created_at FROM manufacturers ORDER BY name",
			func(row pgx.Row) (store.Record, error) {
				var m store.Manufacturer
				var created *time.Time
				err := row.Scan(&m.Name, &m.CAPEM, &m.DeviceIDFrom, &m.DevicePattern, &created)
				m.CreatedAt = timeOf(created)
				return store.Record{Manufacturer: &m}, err
			}},
		{"admin", "SELECT " + adminCols + " FROM admins ORDER BY name", func(row pgx.Row) (store.Record, error) {
			a, err := scanAdmin(row)
			return store.Record{Admin: &a}, err
		}},
		{"device", "SELECT " + deviceCols + " FROM devices ORDER BY id", func(row pgx.Row) (store.Record, error) {
			d, err := scanDevice(row)
			return store.Record{Device: &d}, err
		}},
		{"certificate", "SELECT " + certCols + " FROM certificates ORDER BY serial", func(row pgx.Row) (store.Record, error) {
			c, err := scanCert(row)
			return store.Record{Certificate: &c}, err
		}},
		{"manufacturer_use", "SELECT fingerprint, device_id FROM mfr_certs ORDER BY fingerprint", func(row pgx.Row) (store.Record, error) {
			var u store.ManufacturerUse
			var fp []byte
			if err := row.Scan(&fp, &u.DeviceID); err != nil {
				return store.Record{}, err
			}
			var err error
			u.Fingerprint, err = hash32(fp)
			return store.Record{ManufacturerUse: &u}, err
		}},
		{"token", "SELECT " + tokenCols + " FROM tokens ORDER BY hash", func(row pgx.Row) (store.Record, error) {
			t, err := scanToken(row)
			return store.Record{Token: &t}, err
		}},
		{"revocation", "SELECT " + revocationCols + " FROM revocations ORDER BY seq", func(row pgx.Row) (store.Record, error) {
			e, err := scanRevocation(row)
			return store.Record{Revocation: &e}, err
		}},
		{"blocked_key", "SELECT key_hash FROM blocked_keys ORDER BY key_hash", func(row pgx.Row) (store.Record, error) {
			var b []byte
			if err := row.Scan(&b); err != nil {
				return store.Record{}, err
			}
			h, err := hash32(b)
			k := store.KeyHash(h)
			return store.Record{BlockedKey: &k}, err
		}},
		{"nonce", "SELECT hash, expires FROM nonces ORDER BY hash", func(row pgx.Row) (store.Record, error) {
			var n store.Nonce
			var h []byte
			if err := row.Scan(&h, &n.Expires); err != nil {
				return store.Record{}, err
			}
			var err error
			n.Hash, err = hash32(h)
			n.Expires = n.Expires.UTC()
			return store.Record{Nonce: &n}, err
		}},
		{"audit", "SELECT " + auditCols + " FROM audit ORDER BY seq", func(row pgx.Row) (store.Record, error) {
			e, err := scanAudit(row)
			return store.Record{Audit: &e}, err
		}},
		{"checkpoint", "SELECT " + checkpointCols + " FROM audit_checkpoints ORDER BY size", func(row pgx.Row) (store.Record, error) {
			c, err := scanCheckpoint(row)
			return store.Record{Checkpoint: &c}, err
		}},
		{"counter", "SELECT name, value FROM counters ORDER BY name", func(row pgx.Row) (store.Record, error) {
			var c store.Counter
			var v int64
			err := row.Scan(&c.Name, &v)
			c.Value = uint64(v)
			return store.Record{Counter: &c}, err
		}},
		{"meta", "SELECT key, value FROM meta ORDER BY key", func(row pgx.Row) (store.Record, error) {
			var m store.Meta
			err := row.Scan(&m.Key, &m.Value)
			if m.Value == nil {
				m.Value = []byte{}
			}
			return store.Record{Meta: &m}, err
		}},
		{"fleet_renew_now", "SELECT renew_now_at FROM fleet WHERE renew_now_at IS NOT NULL", func(row pgx.Row) (store.Record, error) {
			var at time.Time
			err := row.Scan(&at)
			at = at.UTC()
			return store.Record{FleetRenewNow: &at}, err
		}},
		{"crl", "SELECT number, this_update, next_update, der FROM crl_latest", func(row pgx.Row) (store.Record, error) {
			var c store.CRL
			var n int64
			var thisUpdate, nextUpdate *time.Time
			err := row.Scan(&n, &thisUpdate, &nextUpdate, &c.DER)
			c.Number, c.ThisUpdate, c.NextUpdate = uint64(n), timeOf(thisUpdate), timeOf(nextUpdate)
			return store.Record{CRL: &c}, err
		}},
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := each(st.kind, st.sql, st.scan); err != nil {
			return err
		}
	}
	return nil
}

// Load writes the records into this store, which must be empty
// (store.ErrNotEmpty otherwise), in one transaction; see store.Loader.
// Records are sent with COPY, loadChunk rows at a time, so a million
// devices load in one pass. The certificates' key bindings are derived
// from them, as Issue and Renew made them; the audit and revocation Seq
// heads are set to the largest loaded, so the next appends continue
// after them. It takes the log heads' row lock first: a write through
// another store waits for the load (and then finds it not empty).
func (s *Store) Load(ctx context.Context, next func() (store.Record, bool, error)) error {
	err := s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM log_heads FOR UPDATE"); err != nil {
			return err
		}
		var full bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM certificates)
			OR EXISTS (SELECT 1 FROM tokens) OR EXISTS (SELECT 1 FROM revocations) OR EXISTS (SELECT 1 FROM audit)
			OR EXISTS (SELECT 1 FROM manufacturers) OR EXISTS (SELECT 1 FROM admins) OR EXISTS (SELECT 1 FROM mfr_certs) OR EXISTS (SELECT 1 FROM blocked_keys)
			OR EXISTS (SELECT 1 FROM nonces) OR EXISTS (SELECT 1 FROM counters) OR EXISTS (SELECT 1 FROM meta)
			OR EXISTS (SELECT 1 FROM key_bindings) OR EXISTS (SELECT 1 FROM crl_latest) OR EXISTS (SELECT 1 FROM crl_lease)
			OR EXISTS (SELECT 1 FROM audit_checkpoints)
			OR EXISTS (SELECT 1 FROM fleet WHERE renew_now_at IS NOT NULL)
			OR EXISTS (SELECT 1 FROM log_heads WHERE audit_seq > 0 OR revocation_seq > 0)`).Scan(&full)
		if err != nil {
			return err
		}
		if full {
			return store.ErrNotEmpty
		}
		l := loader{ctx: ctx, tx: tx}
		if err := backend.LoadRecords(ctx, next, l.add); err != nil {
			return err
		}
		if err := l.flush(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO key_bindings (key_hash, device_id)
				SELECT DISTINCT ON (key_hash) key_hash, device_id FROM certificates ORDER BY key_hash, serial DESC;
			UPDATE log_heads SET audit_seq = (SELECT coalesce(max(seq), 0) FROM audit),
				revocation_seq = (SELECT coalesce(max(seq), 0) FROM revocations);
			UPDATE audit_checkpoint_head SET size = (SELECT coalesce(max(size), 0) FROM audit_checkpoints)`)
		if err != nil {
			return err
		}
		if _, err := buildAuditTree(ctx, tx, false); err != nil {
			return fmt.Errorf("build the audit tree: %w", err)
		}
		_, err = tx.Exec(ctx, recountSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("load store: %w", err)
	}
	return nil
}

// loader buffers the rows of one table for COPY.
type loader struct {
	ctx   context.Context
	tx    *txn
	table string
	cols  []string
	rows  [][]any
}

// add buffers r, flushing first if r belongs to another table.
func (l *loader) add(r store.Record) error {
	table, cols, row, err := loadRow(r)
	if err != nil {
		return err
	}
	if table == "" { // written directly
		if err := l.flush(); err != nil {
			return err
		}
		return l.direct(r)
	}
	if table != l.table || len(l.rows) == loadChunk {
		if err := l.flush(); err != nil {
			return err
		}
		l.table, l.cols = table, cols
	}
	l.rows = append(l.rows, row)
	return nil
}

// flush sends the buffered rows.
func (l *loader) flush() error {
	if len(l.rows) == 0 {
		return nil
	}
	_, err := l.tx.CopyFrom(l.ctx, pgx.Identifier{l.table}, l.cols, pgx.CopyFromRows(l.rows))
	if err != nil {
		return fmt.Errorf("copy into %s: %w", l.table, err)
	}
	l.rows = l.rows[:0]
	return nil
}

// direct writes the records of one-row tables.
func (l *loader) direct(r store.Record) error {
	var err error
	switch {
	case r.FleetRenewNow != nil:
		_, err = l.tx.Exec(l.ctx, "UPDATE fleet SET renew_now_at = $1", *r.FleetRenewNow)
	case r.CRL != nil:
		c := r.CRL
		if c.Number == 0 || c.Number > math.MaxInt64 || len(c.DER) == 0 {
			return errArg("CRL number %d out of range, or no DER", c.Number)
		}
		_, err = l.tx.Exec(l.ctx, `INSERT INTO crl_latest (number, this_update, next_update, der) VALUES ($1, $2, $3, $4)
			ON CONFLICT (one) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
				next_update = excluded.next_update, der = excluded.der`,
			int64(c.Number), nullTime(c.ThisUpdate), nullTime(c.NextUpdate), c.DER)
	default:
		return errors.New("empty record")
	}
	return err
}

// loadRow returns the table, columns and values of r; table "" for the
// records of one-row tables (loader.direct).
func loadRow(r store.Record) (table string, cols []string, row []any, err error) {
	mfr := func(d *store.Device) (name, serial *string, fp []byte) {
		if m := d.Manufacturer; m != nil {
			return &m.Manufacturer, &m.Serial, m.Fingerprint[:]
		}
		return nil, nil, nil
	}
	seq := func(n uint64) (int64, error) {
		if n == 0 || n > math.MaxInt64 {
			return 0, errArg("sequence number %d out of range", n)
		}
		return int64(n), nil
	}
	switch {
	case r.Manufacturer != nil:
		m := r.Manufacturer
		return "manufacturers", []string{"name", "ca_pem", "device_id_from", "device_pattern", "created_at"},
			[]any{m.Name, m.CAPEM, m.DeviceIDFrom, m.DevicePattern, nullTime(m.CreatedAt)}, nil
	case r.Admin != nil:
		a := r.Admin
		return "admins", []string{"name", "role", "token_hash", "created_at", "disabled_at", "rotated_at"},
			[]any{a.Name, string(a.Role), a.TokenHash[:], nullTime(a.CreatedAt), nullTime(a.DisabledAt), nullTime(a.RotatedAt)}, nil
	case r.Device != nil:
		d := r.Device
		name, serial, fp := mfr(d)
		return "devices", []string{"id", "status", "created_at", "updated_at", "last_renewal_at", "renew_now_at",
				"revoked_at", "mfr_name", "mfr_serial", "mfr_fingerprint", "not_after", "renew_by"},
			[]any{d.ID, string(d.Status), d.CreatedAt, d.UpdatedAt, nullTime(d.LastRenewalAt), nullTime(d.RenewNowAt),
				nullTime(d.RevokedAt), name, serial, fp, nullTime(d.NotAfter), nullTime(d.RenewBy)}, nil
	case r.Certificate != nil:
		c := r.Certificate
		if !validSerial(c.Serial) || c.Parent != nil && !validSerial(c.Parent) {
			return "", nil, nil, errArg("certificate serial %v or parent %v out of range", c.Serial, c.Parent)
		}
		return "certificates", []string{"serial", "device_id", "key_hash", "not_before", "not_after", "issued_at",
				"der", "revoked_at", "reason", "parent"},
			[]any{numeric(c.Serial), c.DeviceID, c.KeyHash[:], nullTime(c.NotBefore), c.NotAfter, nullTime(c.IssuedAt),
				c.DER, nullTime(c.RevokedAt), int32(c.Reason), numeric(c.Parent)}, nil
	case r.ManufacturerUse != nil:
		u := r.ManufacturerUse
		return "mfr_certs", []string{"fingerprint", "device_id"}, []any{u.Fingerprint[:], u.DeviceID}, nil
	case r.Token != nil:
		t := r.Token
		return "tokens", []string{"hash", "id", "device_id", "device_pattern", "uses", "spent", "created_at", "expires_at", "revoked_at"},
			[]any{t.Hash[:], t.ID, t.DeviceID, t.DevicePattern, int32(t.Uses), int32(t.Spent),
				nullTime(t.CreatedAt), nullTime(t.ExpiresAt), nullTime(t.RevokedAt)}, nil
	case r.Revocation != nil:
		e := r.Revocation
		n, err := seq(e.Seq)
		if err != nil {
			return "", nil, nil, err
		}
		if !validSerial(e.Serial) {
			return "", nil, nil, errArg("revocation %d: serial %v out of range", e.Seq, e.Serial)
		}
		return "revocations", []string{"seq", "serial", "device_id", "revoked_at", "reason", "not_after"},
			[]any{n, numeric(e.Serial), e.DeviceID, e.RevokedAt, int32(e.Reason), e.NotAfter}, nil
	case r.BlockedKey != nil:
		return "blocked_keys", []string{"key_hash"}, []any{r.BlockedKey[:]}, nil
	case r.Nonce != nil:
		return "nonces", []string{"hash", "expires"}, []any{r.Nonce.Hash[:], r.Nonce.Expires}, nil
	case r.Audit != nil:
		e := r.Audit
		n, err := seq(e.Seq)
		if err != nil {
			return "", nil, nil, err
		}
		return "audit", []string{"seq", "time", "action", "actor", "device_id", "serial", "token_id", "detail", "root"},
			[]any{n, nullTime(e.Time), e.Action, e.Actor, e.DeviceID, e.Serial, e.TokenID, e.Detail, e.Root[:]}, nil
	case r.Checkpoint != nil:
		c := r.Checkpoint
		if c.Size <= 0 {
			return "", nil, nil, errArg("checkpoint size %d is not positive", c.Size)
		}
		note := c.Note
		if note == nil {
			note = []byte{}
		}
		return "audit_checkpoints", []string{"size", "root", "time", "note"}, []any{c.Size, c.Root[:], nullTime(c.Time), note}, nil
	case r.Counter != nil:
		if r.Counter.Value > math.MaxInt64 {
			return "", nil, nil, errArg("counter %q value %d out of range", r.Counter.Name, r.Counter.Value)
		}
		return "counters", []string{"name", "value"}, []any{r.Counter.Name, int64(r.Counter.Value)}, nil
	case r.Meta != nil:
		v := r.Meta.Value
		if v == nil {
			v = []byte{}
		}
		return "meta", []string{"key", "value"}, []any{r.Meta.Key, v}, nil
	case r.FleetRenewNow != nil, r.CRL != nil:
		return "", nil, nil, nil
	}
	return "", nil, nil, errors.New("empty record")
}
