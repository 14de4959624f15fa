package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/store"
)

// crlChannel is the LISTEN/NOTIFY channel of new CRLs; the payload is the
// CRL's number.
const crlChannel = "fleetca_crl"

// Backoff of the listener's reconnections: it doubles from the first to
// the last, and starts again from the first once a connection listened.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// LeaseCRL takes or extends holder's CRL lease until until, with one
// compare-and-swap statement: an upsert of the crl_lease row whose UPDATE
// applies only if the row is holder's or its until is at or before now.
// Of replicas racing for a free lease, PostgreSQL lets the first upsert
// in and re-checks the condition of the others against its row, so one
// wins. See store.Replication.
func (s *Store) LeaseCRL(ctx context.Context, holder string, now, until time.Time) (bool, error) {
	if holder == "" || !until.After(now) {
		return false, fmt.Errorf("lease CRL for %q until %s: a holder and an expiry after now are required", holder, until.Format(time.RFC3339))
	}
	var got bool
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		got, err = returnsRow(ctx, tx, `INSERT INTO crl_lease (holder, until) VALUES ($1, $2)
			ON CONFLICT (one) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE crl_lease.holder = excluded.holder OR crl_lease.until <= $3
			RETURNING true`, holder, until, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lease CRL for %q: %w", holder, err)
	}
	return got, nil
}

// PutCRL records c as the latest CRL if holder holds the lease at now and
// c.Number is greater than the latest's, and notifies the other replicas
// (on commit); see store.Replication. The lease row is locked for the
// check, so a LeaseCRL of another holder waits for the record.
func (s *Store) PutCRL(ctx context.Context, holder string, now time.Time, c store.CRL) error {
	switch {
	case c.Number == 0 || len(c.DER) == 0:
		return fmt.Errorf("put CRL %d: a number and the DER are required", c.Number)
	case c.Number > math.MaxInt64:
		return fmt.Errorf("put CRL %d: the number is larger than %d", c.Number, int64(math.MaxInt64))
	}
	err := s.inTx(ctx, func(tx *txn) error {
		var leaseHolder string
		var leaseUntil time.Time
		err := tx.QueryRow(ctx, "SELECT holder, until FROM crl_lease FOR SHARE").Scan(&leaseHolder, &leaseUntil)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && (leaseHolder != holder || !leaseUntil.After(now)) {
			return store.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		newer, err := returnsRow(ctx, tx, `INSERT INTO crl_latest (number, this_update, next_update, der) VALUES ($1, $2, $3, $4)
			ON CONFLICT (one) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
				next_update = excluded.next_update, der = excluded.der
			WHERE crl_latest.number < excluded.number
			RETURNING true`, int64(c.Number), nullTime(c.ThisUpdate), nullTime(c.NextUpdate), c.DER)
		if err != nil {
			return err
		}
		if !newer {
			var latest int64
			if err := tx.QueryRow(ctx, "SELECT number FROM crl_latest").Scan(&latest); err != nil {
				return err
			}
			return fmt.Errorf("latest is %d: %w", latest, store.ErrCRLNotNewer)
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", crlChannel, fmt.Sprint(c.Number))
		return err
	})
	if err != nil {
		return fmt.Errorf("put CRL %d: %w", c.Number, err)
	}
	s.signal()
	return nil
}

// LatestCRL returns the latest CRL if its Number is greater than
// newerThan; see store.Replication.
func (s *Store) LatestCRL(ctx context.Context, newerThan uint64) (store.CRL, error) {
	var c store.CRL
	err := s.read(ctx, func(q querier) error {
		var n int64
		var thisUpdate, nextUpdate *time.Time
		err := q.QueryRow(ctx, "SELECT number, this_update, next_update, der FROM crl_latest WHERE number > $1",
			clampSeq(newerThan)).Scan(&n, &thisUpdate, &nextUpdate, &c.DER)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		c.Number, c.ThisUpdate, c.NextUpdate = uint64(n), timeOf(thisUpdate), timeOf(nextUpdate)
		return err
	})
	if err != nil {
		return store.CRL{}, fmt.Errorf("latest CRL after %d: %w", newerThan, err)
	}
	return c, nil
}

// checkPartition refuses a partition outside 0..store.MaxCRLPartitions-1.
func checkPartition(p int) error {
	if p < 0 || p >= store.MaxCRLPartitions {
		return fmt.Errorf("CRL partition %d is outside 0..%d", p, store.MaxCRLPartitions-1)
	}
	return nil
}

// LeasePartitionCRL is LeaseCRL for partition p's CRL, on its
// crl_partitions row; see store.Replication.
func (s *Store) LeasePartitionCRL(ctx context.Context, p int, holder string, now, until time.Time) (bool, error) {
	if err := checkPartition(p); err != nil {
		return false, err
	}
	if holder == "" || !until.After(now) {
		return false, fmt.Errorf("lease CRL %d for %q until %s: a holder and an expiry after now are required", p, holder, until.Format(time.RFC3339))
	}
	var got bool
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		got, err = returnsRow(ctx, tx, `INSERT INTO crl_partitions (partition, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (partition) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE crl_partitions.holder = excluded.holder OR crl_partitions.until <= $4
			RETURNING true`, int16(p), holder, until, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lease CRL %d for %q: %w", p, holder, err)
	}
	return got, nil
}

// PutPartitionCRL is PutCRL for partition p's CRL; see store.Replication.
// The lease and the CRL share the partition's row, so one conditional
// UPDATE checks both.
func (s *Store) PutPartitionCRL(ctx context.Context, p int, holder string, now time.Time, c store.CRL) error {
	switch {
	case checkPartition(p) != nil:
		return checkPartition(p)
	case c.Number == 0 || len(c.DER) == 0:
		return fmt.Errorf("put CRL %d of partition %d: a number and the DER are required", c.Number, p)
	case c.Number > math.MaxInt64:
		return fmt.Errorf("put CRL %d of partition %d: the number is larger than %d", c.Number, p, int64(math.MaxInt64))
	}
	err := s.inTx(ctx, func(tx *txn) error {
		var leaseHolder string
		var leaseUntil time.Time
		var latest int64
		err := tx.QueryRow(ctx, "SELECT holder, until, number FROM crl_partitions WHERE partition = $1 FOR UPDATE", int16(p)).
			Scan(&leaseHolder, &leaseUntil, &latest)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && (leaseHolder != holder || !leaseUntil.After(now)) {
			return store.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		if uint64(latest) >= c.Number {
			return fmt.Errorf("latest is %d: %w", latest, store.ErrCRLNotNewer)
		}
		if _, err := tx.Exec(ctx, `UPDATE crl_partitions SET number = $2, this_update = $3, next_update = $4, der = $5
			WHERE partition = $1`, int16(p), int64(c.Number), nullTime(c.ThisUpdate), nullTime(c.NextUpdate), c.DER); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", crlChannel, fmt.Sprint(c.Number))
		return err
	})
	if err != nil {
		return fmt.Errorf("put CRL %d of partition %d: %w", c.Number, p, err)
	}
	s.signal()
	return nil
}

// LatestPartitionCRL is LatestCRL for partition p's CRL; see
// store.Replication.
func (s *Store) LatestPartitionCRL(ctx context.Context, p int, newerThan uint64) (store.CRL, error) {
	if err := checkPartition(p); err != nil {
		return store.CRL{}, err
	}
	var c store.CRL
	err := s.read(ctx, func(q querier) error {
		var n int64
		var thisUpdate, nextUpdate *time.Time
		err := q.QueryRow(ctx, `SELECT number, this_update, next_update, der FROM crl_partitions
			WHERE partition = $1 AND number > $2`, int16(p), clampSeq(newerThan)).Scan(&n, &thisUpdate, &nextUpdate, &c.DER)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		c.Number, c.ThisUpdate, c.NextUpdate = uint64(n), timeOf(thisUpdate), timeOf(nextUpdate)
		return err
	})
	if err != nil {
		return store.CRL{}, fmt.Errorf("latest CRL of partition %d after %d: %w", p, newerThan, err)
	}
	return c, nil
}

// subscribers are the Changes channels of a Store, and its listener.
type subscribers struct {
	mu     sync.Mutex
	subs   map[chan struct{}]struct{}
	closed bool

	// The listener starts with the first Changes and stops at Close.
	started bool
	stop    context.CancelFunc
	done    chan struct{}

	// onListen, if set (by tests), is called each time the listener's
	// connection has run its LISTEN commands.
	onListen func()
}

// Changes returns a channel that receives a value after a Revoke, a Renew
// that superseded certificates or a PutCRL committed, through this Store
// or any other on the same database; see store.Replication.
//
// The other replicas' commits arrive by LISTEN/NOTIFY: the first call
// starts a listener, a goroutine with a dedicated connection (not a
// pooled one: it stays in LISTEN; application_name fleetca-listen) that
// waits for the notifications the revoking or CRL-recording transaction
// sent (PostgreSQL delivers them on commit). When that connection fails
// the listener reconnects with a backoff from 100ms to 5s; it signals
// every channel each time it loses the connection, because the
// notifications sent meanwhile are lost and the readers must poll.
func (s *Store) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subs.mu.Lock()
	closed := s.subs.closed
	if !closed {
		if s.subs.subs == nil {
			s.subs.subs = map[chan struct{}]struct{}{}
		}
		s.subs.subs[ch] = struct{}{}
		if !s.subs.started {
			s.subs.started = true
			lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			s.subs.stop, s.subs.done = stop, make(chan struct{})
			go s.listen(lctx, s.subs.onListen)
		}
	}
	s.subs.mu.Unlock()
	if closed {
		close(ch)
		return ch
	}
	context.AfterFunc(ctx, func() { s.unsubscribe(ch) })
	return ch
}

// unsubscribe removes ch and closes it, once.
func (s *Store) unsubscribe(ch chan struct{}) {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	if _, ok := s.subs.subs[ch]; ok {
		delete(s.subs.subs, ch)
		close(ch)
	}
}

// signal wakes every Changes channel without blocking.
func (s *Store) signal() {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	for ch := range s.subs.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// closeSubs stops the listener, if it runs, and closes every Changes
// channel; later ones are born closed.
func (s *Store) closeSubs() {
	s.subs.mu.Lock()
	s.subs.closed = true
	stop, done := s.subs.stop, s.subs.done
	for ch := range s.subs.subs {
		delete(s.subs.subs, ch)
		close(ch)
	}
	s.subs.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// listen keeps a connection listening on the revocation and CRL channels
// until ctx ends, reconnecting with backoff.
func (s *Store) listen(ctx context.Context, onListen func()) {
	defer close(s.subs.done)
	backoff := listenBackoffMin
	for {
		listened, err := s.listenConn(ctx, onListen)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = listenBackoffMin
		}
		s.log.Warn("store change listener lost its connection; reconnecting",
			"err", s.secret.redact(err.Error()), "retry_in", backoff)
		// Notifications sent until the next LISTEN are lost: the readers
		// must poll.
		s.signal()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenConn connects, listens and signals on each notification until
// the connection fails (its error) or ctx ends. listened reports whether
// it got as far as listening.
func (s *Store) listenConn(ctx context.Context, onListen func()) (listened bool, err error) {
	cfg := s.cfg.ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = appNameListen
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{revocationChannel, crlChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return false, err
		}
	}
	if onListen != nil {
		onListen()
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		s.signal()
	}
}
