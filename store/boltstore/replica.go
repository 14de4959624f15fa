package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/fleetca/fleetca/store"
)

// Keys of the crl bucket.
var (
	crlLeaseKey  = []byte("lease")  // crlLease JSON
	crlLatestKey = []byte("latest") // store.CRL JSON
	crlNumberKey = []byte("number") // the latest CRL's Number, 8 bytes big-endian
)

// crlLease is the crl bucket's lease record.
type crlLease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// crlKeys are the crl bucket's keys of one CRL scope: the full CRL's
// ("lease", "latest", "number"), or partition p's (the same, suffixed
// "/<p>").
type crlKeys struct{ lease, latest, number []byte }

var fullCRLKeys = crlKeys{crlLeaseKey, crlLatestKey, crlNumberKey}

// partitionCRLKeys returns partition p's keys.
func partitionCRLKeys(p int) crlKeys {
	sfx := "/" + strconv.Itoa(p)
	return crlKeys{[]byte("lease" + sfx), []byte("latest" + sfx), []byte("number" + sfx)}
}

// checkPartition refuses a partition outside 0..store.MaxCRLPartitions-1.
func checkPartition(p int) error {
	if p < 0 || p >= store.MaxCRLPartitions {
		return fmt.Errorf("CRL partition %d is outside 0..%d", p, store.MaxCRLPartitions-1)
	}
	return nil
}

// LeaseCRL takes or extends holder's CRL lease until until, in one
// transaction; see store.Replication. One process opens a bbolt file, but
// several revocation services in it (tests) share it by the same rules.
func (s *Store) LeaseCRL(ctx context.Context, holder string, now, until time.Time) (bool, error) {
	return s.leaseCRL(ctx, fullCRLKeys, holder, now, until)
}

// LeasePartitionCRL is LeaseCRL for partition p's CRL; see store.Replication.
func (s *Store) LeasePartitionCRL(ctx context.Context, p int, holder string, now, until time.Time) (bool, error) {
	if err := checkPartition(p); err != nil {
		return false, err
	}
	return s.leaseCRL(ctx, partitionCRLKeys(p), holder, now, until)
}

func (s *Store) leaseCRL(ctx context.Context, keys crlKeys, holder string, now, until time.Time) (bool, error) {
	if holder == "" || !until.After(now) {
		return false, fmt.Errorf("lease CRL for %q until %s: a holder and an expiry after now are required", holder, until.Format(time.RFC3339))
	}
	got := false
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		got = false
		b := tx.Bucket(bucketCRL)
		var cur crlLease
		found, err := getRecord(b, keys.lease, &cur)
		if err != nil {
			return err
		}
		if found && cur.Holder != holder && cur.Until.After(now) {
			return nil
		}
		got = true
		return putRecord(b, keys.lease, crlLease{Holder: holder, Until: until.UTC()})
	})
	if err != nil {
		return false, fmt.Errorf("lease CRL for %q: %w", holder, err)
	}
	return got, nil
}

// PutCRL records c as the latest CRL if holder holds the lease at now and
// c.Number is greater than the latest's; see store.Replication.
func (s *Store) PutCRL(ctx context.Context, holder string, now time.Time, c store.CRL) error {
	return s.putCRL(ctx, fullCRLKeys, holder, now, c)
}

// PutPartitionCRL is PutCRL for partition p's CRL; see store.Replication.
func (s *Store) PutPartitionCRL(ctx context.Context, p int, holder string, now time.Time, c store.CRL) error {
	if err := checkPartition(p); err != nil {
		return err
	}
	return s.putCRL(ctx, partitionCRLKeys(p), holder, now, c)
}

func (s *Store) putCRL(ctx context.Context, keys crlKeys, holder string, now time.Time, c store.CRL) error {
	if c.Number == 0 || len(c.DER) == 0 {
		return fmt.Errorf("put CRL %d: a number and the DER are required", c.Number)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCRL)
		var lease crlLease
		found, err := getRecord(b, keys.lease, &lease)
		if err != nil {
			return err
		}
		if !found || lease.Holder != holder || !lease.Until.After(now) {
			return store.ErrLeaseLost
		}
		if v := b.Get(keys.number); len(v) == 8 && binary.BigEndian.Uint64(v) >= c.Number {
			return fmt.Errorf("latest is %d: %w", binary.BigEndian.Uint64(v), store.ErrCRLNotNewer)
		}
		return putCRL(b, keys, c)
	})
	if err == nil {
		s.signal()
		return nil
	}
	return fmt.Errorf("put CRL %d: %w", c.Number, err)
}

// putCRL writes c as the latest CRL of keys' scope in the crl bucket b.
func putCRL(b *bbolt.Bucket, keys crlKeys, c store.CRL) error {
	c.ThisUpdate, c.NextUpdate = c.ThisUpdate.UTC(), c.NextUpdate.UTC()
	if err := putRecord(b, keys.latest, c); err != nil {
		return err
	}
	return b.Put(keys.number, binary.BigEndian.AppendUint64(nil, c.Number))
}

// LatestCRL returns the latest CRL if its Number is greater than
// newerThan; see store.Replication.
func (s *Store) LatestCRL(ctx context.Context, newerThan uint64) (store.CRL, error) {
	return s.latestCRL(ctx, fullCRLKeys, newerThan)
}

// LatestPartitionCRL is LatestCRL for partition p's CRL; see
// store.Replication.
func (s *Store) LatestPartitionCRL(ctx context.Context, p int, newerThan uint64) (store.CRL, error) {
	if err := checkPartition(p); err != nil {
		return store.CRL{}, err
	}
	return s.latestCRL(ctx, partitionCRLKeys(p), newerThan)
}

func (s *Store) latestCRL(ctx context.Context, keys crlKeys, newerThan uint64) (store.CRL, error) {
	var c store.CRL
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c = store.CRL{}
		b := tx.Bucket(bucketCRL)
		if v := b.Get(keys.number); len(v) != 8 || binary.BigEndian.Uint64(v) <= newerThan {
			return store.ErrNotFound
		}
		found, err := getRecord(b, keys.latest, &c)
		if err == nil && !found {
			err = errors.New("CRL number without a CRL")
		}
		c.DER = bytes.Clone(c.DER)
		return err
	})
	if err != nil {
		return store.CRL{}, fmt.Errorf("latest CRL after %d: %w", newerThan, err)
	}
	return c, nil
}

// Changes returns a channel signalled after each commit of this Store
// that revoked a certificate or recorded a CRL; see store.Replication. No
// other process opens the file, so these are all the changes there are.
func (s *Store) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	if s.subs == nil {
		s.subs = map[chan struct{}]struct{}{}
	}
	closed := s.subsClosed
	if !closed {
		s.subs[ch] = struct{}{}
	}
	s.subMu.Unlock()
	if closed {
		close(ch)
		return ch
	}
	context.AfterFunc(ctx, func() { s.unsubscribe(ch) })
	return ch
}

// unsubscribe removes ch and closes it, once.
func (s *Store) unsubscribe(ch chan struct{}) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if _, ok := s.subs[ch]; ok {
		delete(s.subs, ch)
		close(ch)
	}
}

// signal wakes every Changes channel without blocking.
func (s *Store) signal() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// closeSubs closes every Changes channel; later ones are born closed.
func (s *Store) closeSubs() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subsClosed = true
	for ch := range s.subs {
		delete(s.subs, ch)
		close(ch)
	}
}
