package pgstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// countShards is how many rows of console_counts share one name's count.
const countShards = 16

// countSQL adds $3[i] to the count named $1[i] in its shard $2[i], for
// each i, in that order (each name once): one statement for the counts a
// write changes.
const countSQL = `INSERT INTO console_counts (name, shard, n)
	SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[])
	ON CONFLICT (name, shard) DO UPDATE SET n = console_counts.n + EXCLUDED.n`

// queueCounts queues with the COMMIT (txn.last) the changes to Stats'
// counts: active and revoked devices, certificates, and with a non-zero
// enrolled an enrollment on its UTC day ("e:" and the day's number since
// 1970). A transaction takes at most one shard row of each name, in the
// names' byte order (active, certs, e:..., revoked), and before the log
// heads' row (appendLogs, queued after), so that no two transactions wait
// for each other's rows in a cycle.
func queueCounts(tx *txn, active, certs, revoked int, enrolled time.Time) {
	enroll := 0
	if !enrolled.IsZero() {
		enroll = 1
	}
	var names []string
	var shards []int16
	var deltas []int64
	for _, c := range []struct {
		name  string
		delta int
	}{{"active", active}, {"certs", certs}, {enrollName(enrolled), enroll}, {"revoked", revoked}} {
		if c.delta != 0 {
			names, shards, deltas = append(names, c.name), append(shards, int16(rand.IntN(countShards))), append(deltas, int64(c.delta))
		}
	}
	if len(names) > 0 {
		tx.last(countSQL, nil, names, shards, deltas)
	}
}

// enrollName is the console_counts name of the enrollments of t's UTC day.
func enrollName(t time.Time) string {
	return "e:" + strconv.FormatInt(floorDiv(t.Unix(), 86400), 10)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// recountSQL makes console_counts afresh from the tables (Load; migration
// 4 says the same): an enrollment is a certificate without a parent.
const recountSQL = `DELETE FROM console_counts;
	INSERT INTO console_counts (name, shard, n)
		SELECT 'active', 0, count(*) FROM devices WHERE status = 'active'
		UNION ALL SELECT 'revoked', 0, count(*) FROM devices WHERE status = 'revoked'
		UNION ALL SELECT 'certs', 0, count(*) FROM certificates
		UNION ALL SELECT 'e:' || floor(extract(epoch FROM issued_at) / 86400)::bigint, 0, count(*)
			FROM certificates WHERE parent IS NULL AND issued_at IS NOT NULL GROUP BY 1`

// Stats reads the counts of devices by status and of certificates from
// console_counts (a few dozen rows), and counts the rest with index range
// scans (migration 0004's partial indexes), whose cost grows with the
// devices in the range: no counter row that every enrollment would
// update, so replicas enrolling at once do not queue on one lock.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	var st store.Stats
	now = now.UTC()
	day0 := now.Truncate(24*time.Hour).AddDate(0, 0, -29)
	err := s.read(ctx, func(q querier) error {
		var active, revoked, certs, e7, e30, expired, stopped, rev24 int64
		err := q.QueryRow(ctx, `SELECT
			(SELECT coalesce(sum(n), 0) FROM console_counts WHERE name = 'active'),
			(SELECT coalesce(sum(n), 0) FROM console_counts WHERE name = 'revoked'),
			(SELECT coalesce(sum(n), 0) FROM console_counts WHERE name = 'certs'),
			(SELECT count(*) FROM devices WHERE status = 'active' AND not_after IS NOT NULL AND not_after > $1 AND not_after <= $1 + interval '7 days'),
			(SELECT count(*) FROM devices WHERE status = 'active' AND not_after IS NOT NULL AND not_after > $1 AND not_after <= $1 + interval '30 days'),
			(SELECT count(*) FROM devices WHERE status = 'active' AND not_after IS NOT NULL AND not_after <= $1),
			(SELECT count(*) FROM devices WHERE status = 'active' AND renew_by IS NOT NULL AND renew_by <= $1),
			(SELECT count(*) FROM revocations WHERE revoked_at > $1 - interval '24 hours' AND revoked_at <= $1 AND reason <> 4)`,
			now).Scan(&active, &revoked, &certs, &e7, &e30, &expired, &stopped, &rev24)
		if err != nil {
			return err
		}
		st.Active, st.Revoked, st.Certificates = int(active), int(revoked), int(certs)
		st.Expiring7d, st.Expiring30d, st.Expired, st.StoppedRenewing, st.Revoked24h = int(e7), int(e30), int(expired), int(stopped), int(rev24)
		names := make([]string, 30)
		for i := range names {
			names[i] = enrollName(day0.AddDate(0, 0, i))
		}
		rows, err := q.Query(ctx, `SELECT name, sum(n) FROM console_counts WHERE name = ANY($1) GROUP BY name`, names)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return err
			}
			if i := slices.Index(names, name); i >= 0 {
				st.Enrollments[i] = int(n)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// devicePos is a QueryDevices cursor: the last device's ID and, for the
// time orders, its time (Unix microseconds, PostgreSQL's precision).
type devicePos struct {
	t  time.Time
	id string
}

func encodePos(p devicePos) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.t.UnixMicro()))
	return backend.EncodeCursor(append(b, p.id...))
}

func decodePos(after string) (devicePos, bool, error) {
	b, err := backend.DecodeCursor(after)
	if err != nil || b == nil {
		return devicePos{}, false, err
	}
	if len(b) < 8 {
		return devicePos{}, false, fmt.Errorf("cursor %q: %w", after, store.ErrBadQuery)
	}
	return devicePos{time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(), string(b[8:])}, true, nil
}

// QueryDevices answers each combination store.DeviceQuery allows with
// one range scan of a migration 0004 index (or the primary key).
func (s *Store) QueryDevices(ctx context.Context, q store.DeviceQuery) ([]store.Device, string, error) {
	q, err := backend.CheckDeviceQuery(q)
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	pos, hasPos, err := decodePos(q.After)
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	limit := store.Page{Limit: q.Limit}.PageLimit()
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Status != "" {
		where = append(where, "status = "+arg(string(q.Status)))
	}
	var order string
	switch q.Sort {
	case store.SortID, store.SortIDDesc:
		if q.Prefix != "" {
			where = append(where, "id >= "+arg(q.Prefix))
			if end := prefixEnd(q.Prefix); end != "" {
				where = append(where, "id < "+arg(end))
			}
		}
		op, order := ">", "id"
		if q.Sort == store.SortIDDesc {
			op, order = "<", "id DESC"
		}
		if hasPos {
			where = append(where, "id "+op+" "+arg(pos.id))
		}
		return s.queryDevices(ctx, where, args, order, limit, func(d store.Device) devicePos { return devicePos{id: d.ID} })
	case store.SortRenewBy:
		where = append(where, "status = 'active'", "renew_by IS NOT NULL")
		if !q.RenewByBefore.IsZero() {
			where = append(where, "renew_by <= "+arg(q.RenewByBefore))
		}
		if hasPos {
			where = append(where, "(renew_by, id) > ("+arg(pos.t)+", "+arg(pos.id)+")")
		}
		order = "renew_by, id"
		return s.queryDevices(ctx, where, args, order, limit, func(d store.Device) devicePos { return devicePos{d.RenewBy, d.ID} })
	default: // store.SortCreatedDesc
		if hasPos {
			where = append(where, "(created_at, id) < ("+arg(pos.t)+", "+arg(pos.id)+")")
		}
		order = "created_at DESC, id DESC"
		return s.queryDevices(ctx, where, args, order, limit, func(d store.Device) devicePos { return devicePos{d.CreatedAt, d.ID} })
	}
}

func (s *Store) queryDevices(ctx context.Context, where []string, args []any, order string, limit int,
	posOf func(store.Device) devicePos) ([]store.Device, string, error) {
	sql := "SELECT " + deviceCols + " FROM devices"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY " + order + " LIMIT " + strconv.Itoa(limit+1)
	var out []store.Device
	err := s.read(ctx, func(q querier) error {
		rows, err := q.Query(ctx, sql, args...)
		out, err = collect(rows, err, scanDevice)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodePos(posOf(out[limit-1]))
	}
	return out, next, nil
}

// prefixEnd returns the least string greater than every string starting
// with p (byte order), "" if there is none.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// QueryAudit: by DeviceID, from the (device_id, seq) index; otherwise
// from the primary key, at most auditScanLimit Seq values back from
// BeforeSeq per call.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, uint64, error) {
	limit, scanLimit := backend.AuditQueryLimits(q, s.auditScanLimit)
	var out []store.AuditEvent
	var next uint64
	err := s.read(ctx, func(qr querier) error {
		out, next = nil, 0
		before := int64(q.BeforeSeq)
		if before == 0 {
			if err := qr.QueryRow(ctx, "SELECT coalesce(max(seq), 0) + 1 FROM audit").Scan(&before); err != nil {
				return err
			}
		}
		var where []string
		var args []any
		arg := func(v any) string {
			args = append(args, v)
			return "$" + strconv.Itoa(len(args))
		}
		where = append(where, "seq < "+arg(before))
		low := int64(0)
		if q.DeviceID != "" {
			where = append(where, "device_id = "+arg(q.DeviceID))
		} else if low = before - int64(scanLimit); low > 0 {
			where = append(where, "seq >= "+arg(low))
		}
		if q.Actor != "" {
			where = append(where, "actor = "+arg(q.Actor))
		}
		if q.Action != "" {
			where = append(where, "action = "+arg(q.Action))
		}
		if !q.Since.IsZero() {
			where = append(where, "time >= "+arg(q.Since))
		}
		if !q.Until.IsZero() {
			where = append(where, "time < "+arg(q.Until))
		}
		rows, err := qr.Query(ctx, "SELECT "+auditCols+" FROM audit WHERE "+strings.Join(where, " AND ")+
			" ORDER BY seq DESC LIMIT "+strconv.Itoa(limit+1), args...)
		out, err = collect(rows, err, scanAudit)
		if err != nil {
			return err
		}
		switch {
		case len(out) > limit:
			out = out[:limit]
			next = out[limit-1].Seq
		case low > 1:
			next = uint64(low)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("query audit: %w", err)
	}
	return out, next, nil
}
