package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
	"github.com/fleetca/fleetca/store/internal/backend"
)

// The buckets derived from the records (doc.go): indexes of the console's
// queries and the counters of Stats. Every write of a device goes through
// putDevice, of an audit row through appendAudit, of a revocation through
// revokeCertTx and of a new certificate through countCertificate, which
// keep them; rebuildDerived makes them afresh from the records (Open of an
// older file, Load).
var (
	bucketDevicesByStatus        = []byte("devices_by_status")         // status, 0x00, device ID -> empty
	bucketDevicesByRenewBy       = []byte("devices_by_renew_by")       // timeKey(RenewBy), device ID -> empty (active devices)
	bucketDevicesByCreated       = []byte("devices_by_created")        // timeKey(CreatedAt), device ID -> empty
	bucketDevicesByStatusCreated = []byte("devices_by_status_created") // status, 0x00, timeKey(CreatedAt), device ID -> empty
	bucketAuditByDevice          = []byte("audit_by_device")           // device ID, 0x00, seqKey -> empty
	bucketStats                  = []byte("stats")                     // counters and histograms (statKey, histKey)
)

var derivedBuckets = [][]byte{
	bucketDevicesByStatus, bucketDevicesByRenewBy, bucketDevicesByCreated,
	bucketDevicesByStatusCreated, bucketAuditByDevice, bucketStats,
}

// layoutVersion is the version of the derived buckets' layout, kept in
// stats under layoutKey. Open rebuilds them when the file's is older.
const layoutVersion = 2

var layoutKey = []byte("layout")

// Counters of the stats bucket, int64 big-endian.
var (
	statActive   = []byte("n:active")
	statRevoked  = []byte("n:revoked")
	statCerts    = []byte("n:certs")
	statNotAfter = []byte("n:not_after") // active devices with a NotAfter
	statRenewBy  = []byte("n:renew_by")  // active devices with a RenewBy
)

// Histograms of the stats bucket: kind, unit ('h' hour or 'd' day), the
// UTC hour or day number (floor of Unix seconds / 3600 or 86400) as 8
// bytes big-endian with the sign bit flipped -> count, int64 big-endian.
// Every kind but histEnroll is kept in hours and in days (a range sums
// whole days from the day buckets, the ends from the hour buckets).
const (
	histNotAfter = 'A' // active devices by NotAfter
	histRenewBy  = 'R' // active devices by RenewBy
	histRevoked  = 'X' // revocations but superseded, by RevokedAt
	histEnroll   = 'E' // Issue calls by the certificate's IssuedAt, days only
)

func histKey(kind, unit byte, n int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind, unit}, uint64(n)^(1<<63))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func hourOf(t time.Time) int64 { return floorDiv(t.Unix(), 3600) }
func dayOf(t time.Time) int64  { return floorDiv(t.Unix(), 86400) }

// addStat adds delta to the int64 under key in b, deleting it at zero.
func addStat(b *bbolt.Bucket, key []byte, delta int64) error {
	if delta == 0 {
		return nil
	}
	var n int64
	if v := b.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n == 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func getStat(b *bbolt.Bucket, key []byte) int64 {
	if v := b.Get(key); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// addHist counts t in the histogram kind, by hour and day.
func addHist(b *bbolt.Bucket, kind byte, t time.Time, delta int64) error {
	if err := addStat(b, histKey(kind, 'd', dayOf(t)), delta); err != nil {
		return err
	}
	if kind == histEnroll {
		return nil
	}
	return addStat(b, histKey(kind, 'h', hourOf(t)), delta)
}

// sumUnits sums the buckets of kind and unit numbered lo..hi.
func sumUnits(b *bbolt.Bucket, kind, unit byte, lo, hi int64) int64 {
	if hi < lo {
		return 0
	}
	end := histKey(kind, unit, hi)
	var n int64
	c := b.Cursor()
	for k, v := c.Seek(histKey(kind, unit, lo)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
		if len(v) == 8 {
			n += int64(binary.BigEndian.Uint64(v))
		}
	}
	return n
}

// sumHours sums the histogram kind over hours lo..hi: whole days from the
// day buckets, the hours at either end from the hour buckets.
func sumHours(b *bbolt.Bucket, kind byte, lo, hi int64) int64 {
	if hi < lo {
		return 0
	}
	d0, d1 := floorDiv(lo+23, 24), floorDiv(hi+1, 24) // days d0..d1-1 lie wholly inside
	if d0 >= d1 {
		return sumUnits(b, kind, 'h', lo, hi)
	}
	return sumUnits(b, kind, 'h', lo, d0*24-1) + sumUnits(b, kind, 'd', d0, d1-1) + sumUnits(b, kind, 'h', d1*24, hi)
}

// farHour is an hour after every time a certificate can have.
const farHour = 1 << 40

// putDevice stores d, whose stored record was old (nil for a new device),
// and moves it in the indexes and counters derived from devices.
func putDevice(tx *bbolt.Tx, old *store.Device, d store.Device) error {
	if err := putRecord(tx.Bucket(bucketDevices), []byte(d.ID), d); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if err := indexDevice(tx, old, &d); err != nil {
		return fmt.Errorf("device %q indexes: %w", d.ID, err)
	}
	return nil
}

// indexDevice moves a device from old's entries in the derived buckets to
// d's; either may be nil.
func indexDevice(tx *bbolt.Tx, old, d *store.Device) error {
	stats := tx.Bucket(bucketStats)
	type entry struct {
		bucket []byte
		key    []byte
	}
	type hist struct {
		kind  byte
		total []byte
		t     time.Time
	}
	var oldE, newE []entry
	var oldH, newH []hist
	for i, dev := range []*store.Device{old, d} {
		if dev == nil {
			continue
		}
		st := append([]byte(dev.Status), 0)
		created := timeKey(dev.CreatedAt)
		e := []entry{
			{bucketDevicesByStatus, append(bytes.Clone(st), dev.ID...)},
			{bucketDevicesByCreated, append(bytes.Clone(created), dev.ID...)},
			{bucketDevicesByStatusCreated, append(append(bytes.Clone(st), created...), dev.ID...)},
		}
		var h []hist
		if dev.Status == store.DeviceActive {
			if !dev.RenewBy.IsZero() {
				e = append(e, entry{bucketDevicesByRenewBy, append(timeKey(dev.RenewBy), dev.ID...)})
				h = append(h, hist{histRenewBy, statRenewBy, dev.RenewBy})
			}
			if !dev.NotAfter.IsZero() {
				h = append(h, hist{histNotAfter, statNotAfter, dev.NotAfter})
			}
		}
		counter := statActive
		if dev.Status == store.DeviceRevoked {
			counter = statRevoked
		}
		h = append(h, hist{0, counter, time.Time{}})
		if i == 0 {
			oldE, oldH = e, h
		} else {
			newE, newH = e, h
		}
	}
	hasE := func(es []entry, x entry) bool {
		for _, e := range es {
			if bytes.Equal(e.bucket, x.bucket) && bytes.Equal(e.key, x.key) {
				return true
			}
		}
		return false
	}
	hasH := func(hs []hist, x hist) bool {
		for _, h := range hs {
			if h.kind == x.kind && bytes.Equal(h.total, x.total) && h.t.Equal(x.t) {
				return true
			}
		}
		return false
	}
	for _, e := range oldE {
		if !hasE(newE, e) {
			if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
				return err
			}
		}
	}
	for _, e := range newE {
		if !hasE(oldE, e) {
			if err := tx.Bucket(e.bucket).Put(e.key, []byte{}); err != nil {
				return err
			}
		}
	}
	for sign, pair := range [2][2][]hist{{newH, oldH}, {oldH, newH}} {
		delta := int64(1 - 2*sign) // +1 for new entries, -1 for old
		for _, h := range pair[0] {
			if hasH(pair[1], h) {
				continue
			}
			if err := addStat(stats, h.total, delta); err != nil {
				return err
			}
			if h.kind != 0 {
				if err := addHist(stats, h.kind, h.t, delta); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// countCertificate counts a new certificate, and an enrollment (Issue)
// by its IssuedAt.
func countCertificate(tx *bbolt.Tx, c store.Certificate, enrollment bool) error {
	stats := tx.Bucket(bucketStats)
	if err := addStat(stats, statCerts, 1); err != nil {
		return err
	}
	if enrollment {
		return addHist(stats, histEnroll, c.IssuedAt, 1)
	}
	return nil
}

// countRevocation counts a revocation log entry in the revocations
// histogram unless it is a supersession.
func countRevocation(tx *bbolt.Tx, reason int, at time.Time) error {
	if reason == reasonSuperseded {
		return nil
	}
	return addHist(tx.Bucket(bucketStats), histRevoked, at, 1)
}

// indexAudit indexes an audit row that names a device.
func indexAudit(tx *bbolt.Tx, seq uint64, deviceID string) error {
	if deviceID == "" {
		return nil
	}
	return tx.Bucket(bucketAuditByDevice).Put(append(deviceIndexPrefix(deviceID), seqKey(seq)...), []byte{})
}

// upgradeLayout rebuilds the derived buckets when the file's layout is
// older than layoutVersion (a file written before they existed).
func upgradeLayout(tx *bbolt.Tx) error {
	if v := tx.Bucket(bucketStats).Get(layoutKey); len(v) == 8 && binary.BigEndian.Uint64(v) >= layoutVersion {
		return nil
	}
	return rebuildDerived(tx)
}

// rebuildDerived empties the derived buckets and makes them again from
// the records, in one pass over each bucket of records. A device with no
// NotAfter (a file written before devices recorded it) gets the NotAfter
// and RenewBy of its newest certificate (by IssuedAt, then serial); a
// device reset since it was revoked, of its newest issued after its
// RevokedAt, or none.
func rebuildDerived(tx *bbolt.Tx) error {
	for _, name := range derivedBuckets {
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("delete bucket %s: %w", name, err)
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	devices := tx.Bucket(bucketDevices)
	var backfill []store.Device
	err := devices.ForEach(func(k, v []byte) error {
		var d store.Device
		if err := decodeRecord(v, &d); err != nil {
			return fmt.Errorf("decode device %q: %w", k, err)
		}
		if d.NotAfter.IsZero() {
			backfill = append(backfill, d)
			return nil
		}
		return indexDevice(tx, nil, &d)
	})
	if err != nil {
		return err
	}
	certs, byDevice := tx.Bucket(bucketCerts), tx.Bucket(bucketCertsByDevice)
	for _, d := range backfill {
		var newest *store.Certificate
		prefix := deviceIndexPrefix(d.ID)
		cur := byDevice.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			key := k[len(prefix):]
			c, err := decodeCertificate(key, certs.Get(key))
			if err != nil {
				return err
			}
			if d.Status == store.DeviceActive && !d.RevokedAt.IsZero() && !c.IssuedAt.After(d.RevokedAt) {
				continue
			}
			if newest == nil || newest.IssuedAt.Before(c.IssuedAt) ||
				newest.IssuedAt.Equal(c.IssuedAt) && newest.Serial.Cmp(c.Serial) < 0 {
				newest = &c
			}
		}
		if newest != nil {
			d.NotAfter, d.RenewBy = backend.DeviceCertificate(*newest)
		}
		if err := putDevice(tx, nil, d); err != nil {
			return err
		}
	}
	stats := tx.Bucket(bucketStats)
	err = certs.ForEach(func(k, v []byte) error {
		c, err := certLight(v)
		if err != nil {
			return fmt.Errorf("decode certificate %x: %w", k, err)
		}
		if err := addStat(stats, statCerts, 1); err != nil {
			return err
		}
		if c.Parent == nil {
			return addHist(stats, histEnroll, c.IssuedAt, 1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
		e, err := decodeRevocation(k, v)
		if err != nil {
			return err
		}
		return countRevocation(tx, e.Reason, e.RevokedAt)
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
		var ev store.AuditEvent
		if err := decodeRecord(v, &ev); err != nil {
			return fmt.Errorf("decode audit event %x: %w", k, err)
		}
		return indexAudit(tx, binary.BigEndian.Uint64(k), ev.DeviceID)
	})
	if err != nil {
		return err
	}
	return stats.Put(layoutKey, binary.BigEndian.AppendUint64(nil, layoutVersion))
}

// Stats returns the fleet's counters as of now, from the stats bucket:
// a few counters and at most a few hundred histogram buckets, whatever
// the size of the fleet.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	var st store.Stats
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketStats)
		nh := hourOf(now)
		st.Active = int(getStat(b, statActive))
		st.Revoked = int(getStat(b, statRevoked))
		st.Certificates = int(getStat(b, statCerts))
		st.Expired = int(getStat(b, statNotAfter) - sumHours(b, histNotAfter, nh+1, farHour))
		st.Expiring7d = int(sumHours(b, histNotAfter, nh+1, hourOf(now.Add(7*24*time.Hour))))
		st.Expiring30d = int(sumHours(b, histNotAfter, nh+1, hourOf(now.Add(30*24*time.Hour))))
		st.StoppedRenewing = int(getStat(b, statRenewBy) - sumHours(b, histRenewBy, nh+1, farHour))
		st.Revoked24h = int(sumHours(b, histRevoked, hourOf(now.Add(-24*time.Hour))+1, nh))
		today := dayOf(now)
		for i := range st.Enrollments {
			st.Enrollments[i] = int(getStat(b, histKey(histEnroll, 'd', today-29+int64(i))))
		}
		return nil
	})
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// QueryDevices returns a page of the devices q selects, from the index
// that serves q's combination, and the cursor of the next page: the
// index key of the page's last device, base64.
func (s *Store) QueryDevices(ctx context.Context, q store.DeviceQuery) ([]store.Device, string, error) {
	q, err := backend.CheckDeviceQuery(q)
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	after, err := backend.DecodeCursor(q.After)
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	limit := store.Page{Limit: q.Limit}.PageLimit()
	var bucket, prefix, stop []byte
	var idOffset int // where the device ID starts in a key, after prefix
	desc := false
	switch q.Sort {
	case store.SortID, store.SortIDDesc:
		desc = q.Sort == store.SortIDDesc
		if q.Status == "" {
			bucket, prefix = bucketDevices, []byte(q.Prefix)
		} else {
			bucket = bucketDevicesByStatus
			prefix = append(append([]byte(q.Status), 0), q.Prefix...)
			idOffset = len(q.Status) + 1
		}
	case store.SortRenewBy:
		bucket, idOffset = bucketDevicesByRenewBy, timeKeyLen
		if !q.RenewByBefore.IsZero() {
			stop = timeKey(q.RenewByBefore)
		}
	case store.SortCreatedDesc:
		desc = true
		if q.Status == "" {
			bucket, idOffset = bucketDevicesByCreated, timeKeyLen
		} else {
			bucket = bucketDevicesByStatusCreated
			prefix = append([]byte(q.Status), 0)
			idOffset = len(prefix) + timeKeyLen
		}
	}
	if after != nil && (!bytes.HasPrefix(after, prefix) || len(after) < idOffset) {
		return nil, "", fmt.Errorf("query devices: cursor of another query: %w", store.ErrBadQuery)
	}
	var out []store.Device
	var next string
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		out, next = nil, ""
		devices := tx.Bucket(bucketDevices)
		c := tx.Bucket(bucket).Cursor()
		var k []byte
		switch {
		case !desc && after != nil:
			if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		case !desc:
			k, _ = c.Seek(prefix)
		default:
			seek := after
			if seek == nil {
				seek = prefixEnd(prefix)
			}
			if seek == nil {
				k, _ = c.Last()
			} else if k, _ = c.Seek(seek); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		var last []byte
		for ; k != nil && bytes.HasPrefix(k, prefix); k = step(c, desc) {
			if stop != nil && bytes.Compare(k[:timeKeyLen], stop) > 0 {
				break
			}
			if len(out) == limit {
				next = backend.EncodeCursor(last)
				break
			}
			id := k[idOffset:]
			var d store.Device
			found, err := getRecord(devices, id, &d)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("index %s names device %q, which is not recorded", bucket, id)
			}
			out = append(out, d)
			last = bytes.Clone(k)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("query devices: %w", err)
	}
	return out, next, nil
}

// step moves c one key on, forwards or backwards.
func step(c *bbolt.Cursor, desc bool) []byte {
	if desc {
		k, _ := c.Prev()
		return k
	}
	k, _ := c.Next()
	return k
}

// prefixEnd returns the least key greater than every key starting with p,
// nil if there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// QueryAudit returns the events q selects, newest first. With a DeviceID
// it walks that device's audit_by_device entries; otherwise it walks the
// audit bucket back from BeforeSeq, examining at most s.auditScanLimit
// events.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, uint64, error) {
	limit, scanLimit := backend.AuditQueryLimits(q, s.auditScanLimit)
	var out []store.AuditEvent
	var next uint64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		out, next = nil, 0
		audit := tx.Bucket(bucketAudit)
		var prefix []byte
		var c *bbolt.Cursor
		if q.DeviceID != "" {
			prefix, c = deviceIndexPrefix(q.DeviceID), tx.Bucket(bucketAuditByDevice).Cursor()
		} else {
			c = audit.Cursor()
		}
		var k []byte
		switch end := prefixEnd(prefix); {
		case q.BeforeSeq > 0:
			if k, _ = c.Seek(append(bytes.Clone(prefix), seqKey(q.BeforeSeq)...)); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		case end != nil:
			if k, _ = c.Seek(end); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		default:
			k, _ = c.Last()
		}
		examined := 0
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			seqK := k[len(prefix):]
			seq := binary.BigEndian.Uint64(seqK)
			if len(out) == limit {
				next = out[len(out)-1].Seq
				break
			}
			if prefix == nil && examined == scanLimit {
				next = seq + 1
				break
			}
			examined++
			var e store.AuditEvent
			found, err := getRecord(audit, seqK, &e)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("audit_by_device names event %d, which is not recorded", seq)
			}
			if backend.MatchAudit(q, e) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("query audit: %w", err)
	}
	return out, next, nil
}
