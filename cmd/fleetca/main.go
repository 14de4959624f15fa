// Command fleetca is a certificate authority and enrollment service for
// device fleets. See README.md for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

// usageError marks a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// env is what the commands read from outside: the environment, standard
// streams. Only package main reads os.Getenv, through env.getenv.
type env struct {
	// prog is the command as the user invoked it, for help that they can
	// copy ("./bin/fleetca" under make run).
	prog           string
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{prog: os.Args[0], stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(e.stderr, "fleetca: "+oneLine(err))
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitError
}

// oneLine renders err as the CLI's single line: "detail (hint)" for a fault,
// the error text otherwise, and each of several joined errors so, joined
// by "; " (none of them is left out).
func oneLine(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts := make([]string, 0, len(j.Unwrap()))
		for _, e := range j.Unwrap() {
			parts = append(parts, oneLine(e))
		}
		return strings.Join(parts, "; ")
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func newRootCmd(e env) *cobra.Command {
	root := &cobra.Command{
		Use:   "fleetca",
		Short: "A certificate authority and enrollment service for device fleets",
		Long: `fleetca issues client certificates to devices from CSRs, authorised by
one-time enrollment tokens, and serves its CA certificates over HTTPS and HTTP.

Start a CA:      fleetca init --dir DIR --name NAME --no-password && fleetca serve --dir DIR
Mint a token:    fleetca token create --dir DIR --device-id dev-1
Enroll a device: fleetca enroll --ca https://HOST:8443 --fingerprint SHA256 --token T --key device.key --cert device.crt`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.AddCommand(newInitCmd(e), newServeCmd(e), newTokenCmd(e), newEnrollCmd(e), newDevicesCmd(e), newCertsCmd(e),
		newRevokeCmd(e), newCRLCmd(e), newCertCmd(e), newProxyCmd(e), newExportCmd(e), newVersionCmd(e))
	return root
}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// wrong number of arguments), which carry no type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
