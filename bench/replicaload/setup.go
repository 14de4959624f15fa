package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/fleetca/fleetca/bench/benchutil"
	"github.com/fleetca/fleetca/internal/pgtest"
)

// replicaSet is one setup under measurement: one CA served by one or more
// `fleetca serve` processes on copies of one data directory.
type replicaSet struct {
	name    string
	servers []*benchutil.Server
	dsn     string // the PostgreSQL database; "" on bbolt
}

// startSet inits a CA in tmp/NAME-0 (on the database dsn, unless ""),
// copies its data directory to tmp/NAME-1 ... for n replicas in all, as an
// operator copies it to other machines, and serves each, its log in
// tmp/NAME-i.log.
func startSet(ctx context.Context, bin, tmp, name string, n int, dsn string, env []string, logf func(string, ...any)) (*replicaSet, error) {
	first := filepath.Join(tmp, name+"-0")
	var extra []string
	if dsn != "" {
		extra = []string{"--store", dsn}
	}
	if err := benchutil.Init(ctx, bin, first, extra...); err != nil {
		return nil, err
	}
	set := &replicaSet{name: name, dsn: dsn}
	for i := range n {
		dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", name, i))
		if i > 0 {
			if err := copyDir(first, dir); err != nil {
				return nil, err
			}
		}
		srv, err := benchutil.Serve(ctx, bin, dir, filepath.Join(tmp, fmt.Sprintf("%s-%d.log", name, i)), env)
		if err != nil {
			set.stop(logf)
			return nil, err
		}
		set.servers = append(set.servers, srv)
		logf("%s: fleetca serve is pid %d at %s", name, srv.PID, srv.HTTPSURL)
	}
	return set, nil
}

// startPGSet is startSet on a new database of pg.
func startPGSet(ctx context.Context, bin, tmp string, pg *pgtest.Server, name string, n int, env []string, logf func(string, ...any)) (*replicaSet, error) {
	dsn, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	return startSet(ctx, bin, tmp, name, n, dsn, env, logf)
}

// stop stops every server of the set, logging why one did not stop cleanly.
func (s *replicaSet) stop(logf func(string, ...any)) {
	for _, srv := range s.servers {
		if err := srv.Stop(); err != nil {
			logf("%s: fleetca serve pid %d: %v; see %s", s.name, srv.PID, err, srv.LogPath)
		}
	}
	s.servers = nil
}

// pids are the set's server processes.
func (s *replicaSet) pids() []int {
	out := make([]int, len(s.servers))
	for i, srv := range s.servers {
		out[i] = srv.PID
	}
	return out
}

// copyDir copies the directory from to the new directory to, keeping
// each file's and directory's permissions (the keys stay 0600).
func copyDir(from, to string) error {
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(dst, info.Mode().Perm())
		case !info.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return nil
}

// pgInfo is what the report says of the PostgreSQL server.
type pgInfo struct {
	version  string
	pid      int // the postmaster's
	settings string
}

// describePG reads the server's version and durability settings.
func describePG(ctx context.Context, pg *pgtest.Server) (pgInfo, error) {
	var info pgInfo
	pid, err := pg.PID()
	if err != nil {
		return info, fmt.Errorf("PostgreSQL's pid: %w", err)
	}
	info.pid = pid
	dsn, err := pg.CreateDatabase(ctx, "replicaload")
	if err != nil {
		return info, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return info, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&info.version); err != nil {
		return info, err
	}
	for _, s := range []string{"fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "commit_delay", "shared_buffers"} {
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+s).Scan(&v); err != nil {
			return info, errors.Join(fmt.Errorf("SHOW %s", s), err)
		}
		if info.settings != "" {
			info.settings += ", "
		}
		info.settings += s + "=" + v
	}
	return info, nil
}
