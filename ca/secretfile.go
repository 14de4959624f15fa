package ca

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/fleetca/fleetca/internal/fault"
)

// CheckSecretFile refuses a secret file (a CA key file, the password
// file) that anyone but its owner may read, write or run: any permission
// bit for the group or others. It is a fault.Forbidden whose detail names
// what the file is and its path and mode, and whose hint is the chmod that
// fixes it. what names the file for the message ("password file",
// "intermediate key file"). A file that cannot be stat'ed is a plain
// wrapped error: the caller, which reads the file next, says what is
// wrong with it.
func CheckSecretFile(what, file string) error {
	st, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("stat %s: %w", what, err)
	}
	return checkSecretMode(what, file, st.Mode())
}

func checkSecretMode(what, file string, mode fs.FileMode) error {
	if mode.Perm()&0o077 == 0 {
		return nil
	}
	return fault.New(fault.Forbidden, fmt.Sprintf("the %s %s has mode %04o; others can read it", what, file, mode.Perm()),
		"chmod 600 "+file)
}
