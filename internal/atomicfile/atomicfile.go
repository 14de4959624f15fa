// Package atomicfile writes files so that a reader sees either the old
// content or the new, never half of either, and so that a write that
// returned nil survives a crash.
//
// # Basics
//
// Write puts the data in a temporary file beside the target (same
// directory, so the same file system), sets its mode, fsyncs it, renames it
// over the target and fsyncs the directory. The temporary file is removed
// on any failure, and the target is then untouched.
//
// # Caveats
//
// The mode is the one given, whatever the umask: callers writing keys pass
// 0o600. Concurrent writers of one path are not serialised: the last
// rename wins. This package imports nothing of ours.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode perm, atomically and durably
// (see the package comment). Errors name the path and wrap the cause.
func Write(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(perm), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
