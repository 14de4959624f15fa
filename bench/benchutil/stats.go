package benchutil

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// CPUTimes is user and system CPU time.
type CPUTimes struct{ User, Sys time.Duration }

// Total is user plus system time.
func (c CPUTimes) Total() time.Duration { return c.User + c.Sys }

// Sub returns c minus d.
func (c CPUTimes) Sub(d CPUTimes) CPUTimes { return CPUTimes{c.User - d.User, c.Sys - d.Sys} }

// MaxFailures is how many failure messages a Failures keeps, and how many
// a report shows.
const MaxFailures = 5

// Failures counts the failed requests of a load run and keeps the messages
// of the first MaxFailures. The zero value is ready to use; it is safe for
// concurrent use.
type Failures struct {
	mu   sync.Mutex
	n    int
	msgs []string
}

// Addf counts one failure, described by fmt.Sprintf(format, a...).
func (f *Failures) Addf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.msgs) < MaxFailures {
		f.msgs = append(f.msgs, fmt.Sprintf(format, a...))
	}
}

// Result returns the number of failures and the messages kept.
func (f *Failures) Result() (n int, msgs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.msgs
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or zero for none. xs is not changed.
func Median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// xs, or zero for none. It sorts xs.
func Percentile[T cmp.Ordered](xs []T, p float64) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	slices.Sort(xs)
	rank := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[max(0, min(rank, len(xs)-1))]
}

// CPUModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Micros returns d in microseconds, for a report's µs columns.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Millis returns d in milliseconds, for a report's ms columns.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Ratio returns a/b, or 0 when b is 0 (nothing was measured).
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Machine describes this machine for a report's header: OS and
// architecture, CPUs, CPU model and Go version.
func Machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs (%s), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), CPUModel(), runtime.Version())
}

// WriteCPULegend writes the legend of a table with busy and other columns
// (Summary.Busy, Summary.Other), then the server's peak resident memory,
// peakRSS bytes, unless it is 0 (unknown).
func WriteCPULegend(w io.Writer, peakRSS int64) {
	fmt.Fprintf(w, "  busy  = (server + client CPU) / (wall time x %d CPUs): near 100%% the machine, not the server, is the limit\n", runtime.NumCPU())
	fmt.Fprintf(w, "  other = CPU used by other processes, and stolen by the hypervisor, in the same terms\n")
	if peakRSS > 0 {
		fmt.Fprintf(w, "  the server's peak resident memory over the run: %.0f MiB\n", float64(peakRSS)/(1<<20))
	}
}

// TimeOp runs op back to back for about d (at least once) and returns the
// wall time per call; the first error stops it.
func TimeOp(op func() error, d time.Duration) (time.Duration, error) {
	n := 0
	start := time.Now()
	for {
		if err := op(); err != nil {
			return 0, err
		}
		n++
		if el := time.Since(start); el >= d {
			return el / time.Duration(n), nil
		}
	}
}
