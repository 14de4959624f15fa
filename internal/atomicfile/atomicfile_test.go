package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	for _, tc := range []struct {
		name string
		data string
		perm fs.FileMode
	}{
		{"new file", "first", 0o600},
		{"replaces, with the new mode", "second", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(path, []byte(tc.data), tc.perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.data {
				t.Fatalf("content = %q, %v, want %q", got, err, tc.data)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != tc.perm {
				t.Fatalf("mode = %v, %v, want %v", fi.Mode().Perm(), err, tc.perm)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(ents))
			}
		})
	}
}

func TestWriteMissingDirLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "f")
	err := Write(path, []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Write into a missing directory: %v, want fs.ErrNotExist", err)
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root.pem")
	if err := WriteNew(path, []byte("first"), 0o644); err != nil {
		t.Fatalf("WriteNew of a new file: %v", err)
	}
	err := WriteNew(path, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteNew over an existing file: %v, want fs.ErrExist", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "first" {
		t.Errorf("content after the refused WriteNew = %q, %v, want %q", got, err, "first")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode after the refused WriteNew = %v, %v, want 0644", fi.Mode().Perm(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(ents))
	}
}
