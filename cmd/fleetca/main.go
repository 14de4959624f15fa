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
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetca/fleetca/internal/fault"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

// usageError marks a command-line mistake (exit 2). It wraps what was
// wrong, so that a *fault.Error inside is rendered as any other; flag, if
// set, is the flag whose value it was ("--url"), which the line starts
// with.
type usageError struct {
	flag string
	err  error
}

func (e *usageError) Error() string {
	if e.flag != "" {
		return e.flag + ": " + e.err.Error()
	}
	return e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

// usagef is a usage error in the CLI's own words.
func usagef(format string, a ...any) error { return &usageError{err: fmt.Errorf(format, a...)} }

// usage marks err, from a parser or cobra, as a command-line mistake.
func usage(err error) error { return &usageError{err: err} }

// flagUsage marks err, from parsing the value of flag ("--url"), as a
// command-line mistake about that flag: "fleetca: --url: <err's line>".
func flagUsage(flag string, err error) error { return &usageError{flag: flag, err: err} }

// env is what the commands read from outside: the environment, standard
// streams. Only package main reads os.Getenv, through env.getenv.
type env struct {
	// prog is the command as the user invoked it, for help that they can
	// copy ("./bin/fleetca" under make run).
	prog           string
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
	// now, if set, is the clock of init instead of time.Now: tests set it
	// back to make a CA that is already old. No flag or environment
	// variable sets it.
	now func() time.Time
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
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(e.stderr, "fleetca: "+errorLine(cmd, err))
	// The root command runs nothing of ours, so an error that stops at it
	// is cobra refusing the command line (an unknown command) before any
	// of our code ran. Flag and argument errors are usage errors already:
	// newRootCmd wraps them where cobra makes them.
	if _, ok := errors.AsType[*usageError](err); ok || cmd == root {
		return exitUsage
	}
	return exitError
}

// errorLine renders err as the CLI's single line. A *fault.Error is
// "detail (hint)", and if it is about an input (its Field or Key) that cmd
// has a flag for, or that an environment variable stands in for, the hint
// ends with "; use --flag" (or "; use --flag or VARIABLE"): the domain's
// hint names the request field or configuration key, and this is where
// the CLI says it in its own words. Any other error is its text on one
// line, and each of several joined errors is rendered so, joined by "; "
// (none of them is left out).
func errorLine(cmd *cobra.Command, err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts := make([]string, 0, len(j.Unwrap()))
		for _, e := range j.Unwrap() {
			parts = append(parts, errorLine(cmd, e))
		}
		return strings.Join(parts, "; ")
	}
	if ue, ok := errors.AsType[*usageError](err); ok && ue.flag != "" {
		return ue.flag + ": " + errorLine(cmd, ue.err)
	}
	fe, ok := errors.AsType[*fault.Error](err)
	if !ok {
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	hint := fe.Hint
	if words := cliNames(cmd, fe); words != "" {
		if hint != "" {
			hint += "; "
		}
		hint += "use " + words
	}
	if hint == "" {
		return fe.Detail
	}
	return fe.Detail + " (" + hint + ")"
}

// flagNames are the flags whose names do not follow from the request field
// or configuration key they set by the rule "_" to "-" (device_id sets
// --device-id, trust_domain --trust-domain).
var flagNames = map[string]string{
	"ips":                 "ip",     // cert server --ip, a request's "ips"
	"revoke_serial":       "revoke", // token create --revoke, a token request's "revoke_serial"
	"store.dsn":           "store",
	"store.password_file": "store-password-file",
}

// envNames are the configuration keys an environment variable stands in
// for, wherever the key is read.
var envNames = map[string]string{
	"password_file": "FLEETCA_PASSWORD",
}

// cliNames returns what sets fe's Field and Key on this command line: the
// flag of that name, if cmd has one (nil cmd: none), and the environment
// variable, joined by " or "; "" if nothing does.
func cliNames(cmd *cobra.Command, fe *fault.Error) string {
	var names []string
	for _, input := range []string{fe.Field, fe.Key} {
		if input == "" {
			continue
		}
		flag, ok := flagNames[input]
		if !ok {
			flag = strings.ReplaceAll(input, "_", "-")
		}
		if cmd != nil && cmd.Flags().Lookup(flag) != nil {
			names = append(names, "--"+flag)
		}
		if env, ok := envNames[input]; ok {
			names = append(names, env)
		}
	}
	return strings.Join(names, " or ")
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
	// Subcommands inherit the flag error hook: an unknown flag, a missing
	// or unparsable value is a usage error.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.AddCommand(newInitCmd(e), newServeCmd(e), newTokenCmd(e), newEnrollCmd(e), newRenewCmd(e), newDevicesCmd(e), newCertsCmd(e),
		newRevokeCmd(e), newCRLCmd(e), newCertCmd(e), newProxyCmd(e), newExportCmd(e), newManufacturerCmd(e), newAdminCmd(e), newDBCmd(e), newAuditCmd(e), newJWTCmd(e), newVersionCmd(e))
	usageArgs(root)
	return root
}

// usageArgs makes the positional-argument check of c and of every command
// under it (cobra.NoArgs, cobra.ExactArgs, ...) return a usage error:
// cobra's own checks return plain errors.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			if _, ok := errors.AsType[*usageError](err); ok || err == nil {
				return err
			}
			return usage(err)
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}
