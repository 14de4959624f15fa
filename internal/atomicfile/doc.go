// Package atomicfile writes files so that a reader sees either the old
// content or the new, never half of either, and so that a write that
// returned nil survives a crash. It owns fleetca's one way of writing a
// file durably: keys and certificates (init, enroll, cert server), CRL
// files (crl sync, the root CRL) and export's configurations.
//
// # Basics
//
// Write and WriteNew put the data in a temporary file beside the target
// (same directory, so the same file system), set its mode, fsync it, and
// then give it the target's name and fsync the directory. Write renames
// it over the target, replacing what was there; WriteNew hard-links it to
// the target, which fails with an error that wraps fs.ErrExist if the
// target exists, so that nothing already there is ever replaced.
//
// # Invariants
//
//   - The target holds the old content or the new, whole: never a
//     partial write, also after a crash.
//   - A nil error means the content and the name are on disk (the file
//     and the directory were fsynced).
//   - The temporary file is removed whatever happens, and on failure the
//     target is untouched.
//   - Errors name the target and wrap the cause.
//
// # Caveats
//
// The mode is the one given, whatever the umask: callers writing keys pass
// 0o600. Concurrent writers of one path are not serialised: with Write the
// last rename wins, with WriteNew the first link. This package imports
// nothing of ours.
package atomicfile
