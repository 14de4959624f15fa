package benchutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Main is a benchmark command's main. It parses the command line with
// parse (-h exits 0, any other error is printed as "name: error" and exits
// 2), then runs run with a context that ends on SIGINT or SIGTERM and
// exits with the code it returns.
func Main[O any](name string, parse func(args []string, stderr io.Writer) (O, error),
	run func(ctx context.Context, o O, stdout, stderr io.Writer) int) {
	o, err := parse(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Flags are the flags every benchmark command takes.
type Flags struct {
	Fleetca   string   // -fleetca: the binary to run; "" builds Pkg
	Pkg       string   // -pkg: the package to build, relative to the fleetca module's root (default ./cmd/fleetca)
	Tmp       string   // -tmp: the parent of the temporary directory; "" is os.TempDir()
	Keep      bool     // -keep: leave the temporary directory in place
	Strict    bool     // -strict: exit 1 when a target is missed
	ServerEnv []string // -server-env, repeatable: NAME=VALUE added to fleetca serve's environment
}

// NewFlagSet returns the flag set of the command bench/<name>,
// which reports errors and usage on stderr and does not exit, with the
// Flags flags bound to f. keeps lists what the temporary directory holds,
// for -keep's help.
func NewFlagSet(name string, stderr io.Writer, f *Flags, keeps string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.Fleetca, "fleetca", "", "fleetca binary to run (default: build -pkg into the temporary directory)")
	fs.StringVar(&f.Pkg, "pkg", "./cmd/fleetca", "package to build when -fleetca is not given, relative to the fleetca module's root (the parent of bench/)")
	fs.StringVar(&f.Tmp, "tmp", "", "parent of the temporary directory (default $TMPDIR or /tmp); put it on the disk you want fsync measured on")
	fs.BoolVar(&f.Keep, "keep", false, "keep the temporary directory ("+keeps+")")
	fs.BoolVar(&f.Strict, "strict", false, "exit 1 when a target is missed")
	fs.Func("server-env", "`NAME=VALUE` added to fleetca serve's environment, e.g. GOGC=200 (repeatable)", func(s string) error {
		if name, _, ok := strings.Cut(s, "="); !ok || name == "" {
			return fmt.Errorf("%q is not NAME=VALUE", s)
		}
		f.ServerEnv = append(f.ServerEnv, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage (in bench/): go run ./%s [flags]\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args with fs and refuses positional arguments.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Prepare readies a run: it checks the platform (CheckPlatform), makes a
// temporary directory under f.Tmp named after pattern (os.MkdirTemp) and,
// unless f.Fleetca names a binary, builds f.Pkg into it. It returns the
// directory, the fleetca binary and cleanup, which removes the directory
// unless f.Keep (then Prepare logs where it is). On error nothing is left
// to clean up. It uses f.Fleetca, f.Pkg, f.Tmp and f.Keep.
func Prepare(ctx context.Context, f Flags, pattern string, stderr io.Writer, logf func(string, ...any)) (tmp, bin string, cleanup func(), err error) {
	if err := CheckPlatform(); err != nil {
		return "", "", nil, err
	}
	tmp, err = os.MkdirTemp(f.Tmp, pattern)
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	if f.Keep {
		logf("keeping %s", tmp)
		cleanup = func() {}
	}
	bin = f.Fleetca
	if bin == "" {
		bin = filepath.Join(tmp, "fleetca")
		logf("building %s", f.Pkg)
		if err := Build(ctx, f.Pkg, bin, stderr); err != nil {
			cleanup()
			return "", "", nil, err
		}
	}
	return tmp, bin, cleanup, nil
}

// ParseLevels parses a list of concurrency levels, "1,8,32": each a
// number from 1 to 4096.
func ParseLevels(s string) ([]int, error) {
	var levels []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("%q: each level must be a number from 1 to 4096", s)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

// ParseCount parses a count such as "7", "10k" or "1M" (k is a thousand,
// M a million, either case) and checks that it lies within 0..most.
func ParseCount(s string, most int) (int, error) {
	f := strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(f, "k"), strings.HasSuffix(f, "K"):
		mult, f = 1000, f[:len(f)-1]
	case strings.HasSuffix(f, "M"), strings.HasSuffix(f, "m"):
		mult, f = 1_000_000, f[:len(f)-1]
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 0 || n > most/mult {
		return 0, fmt.Errorf("%q is not a count from 0 to %d (k and M suffixes allowed)", s, most)
	}
	return n * mult, nil
}

// FormatCount writes a count as ParseCount reads it: 1000000 as 1M, 10000
// as 10k, any other number in full.
func FormatCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// Logger returns the log function of the command name: "name: message"
// lines on stderr.
func Logger(name string, stderr io.Writer) func(format string, a ...any) {
	return func(format string, a ...any) { fmt.Fprintf(stderr, name+": "+format+"\n", a...) }
}

// ParsePhases parses the -phases flag, a comma-separated list of some of
// all (empty items skipped), into a set.
func ParsePhases(s string, all []string) (map[string]bool, error) {
	out := map[string]bool{}
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(all, p) {
			return nil, fmt.Errorf("-phases: unknown phase %q, want some of %s", p, strings.Join(all, ","))
		}
		out[p] = true
	}
	return out, nil
}

// ExitCode is a load tool's exit code once its report is printed: 1 when
// requests failed (it logs how many, and where the server's log is, for
// the cause), or when a target was missed and strict (-strict) is set;
// else 0.
func ExitCode(failed int, missed, strict bool, serverLog string, logf func(string, ...any)) int {
	switch {
	case failed > 0:
		logf("%d requests failed; see the table and %s", failed, serverLog)
		return 1
	case missed && strict:
		return 1
	}
	return 0
}
