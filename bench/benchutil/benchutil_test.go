package benchutil

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestParseListening(t *testing.T) {
	tests := []struct {
		name, log, https, http, metrics string
	}{
		{"ok/after-other-lines", `{"time":"t","level":"INFO","msg":"certificate authority loaded"}
{"time":"t","level":"INFO","msg":"listening","https":"https://127.0.0.1:43503","http":"http://127.0.0.1:45915","public_url":"http://127.0.0.1:45915"}

fleetca is serving CA "Bench" from d
`, "https://127.0.0.1:43503", "http://127.0.0.1:45915", ""},
		{"ok/metrics", `{"msg":"listening","https":"https://127.0.0.1:1","http":"http://127.0.0.1:2","metrics":"http://127.0.0.1:3/metrics"}` + "\n",
			"https://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3/metrics"},
		{"fail/not-yet", `{"time":"t","level":"INFO","msg":"certificate authority loaded"}` + "\n", "", "", ""},
		{"fail/partial-line", `{"time":"t","level":"INFO","msg":"listening","https":"https://127.0.0.1:4`, "", "", ""},
		{"fail/no-http", `{"msg":"listening","https":"https://127.0.0.1:1"}` + "\n", "", "", ""},
		{"fail/banner-only", "  HTTPS (enrollment, admin API): https://127.0.0.1:1\n", "", "", ""},
		{"fail/not-https", `{"msg":"listening","https":"http://127.0.0.1:1","http":"http://127.0.0.1:2"}` + "\n", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			https, http, metrics := ParseListening([]byte(tc.log))
			if https != tc.https || http != tc.http || metrics != tc.metrics {
				t.Errorf("ParseListening() = %q, %q, %q, want %q, %q, %q", https, http, metrics, tc.https, tc.http, tc.metrics)
			}
		})
	}
}

func TestPercentileAndMedian(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // 100..1 ms, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"p50/odd", []time.Duration{3, 1, 2}, 50, 2},
		{"p99/hundred", hundred, 99, 99 * time.Millisecond},
		{"p50/hundred", hundred, 50, 50 * time.Millisecond},
		{"p100/hundred", hundred, 100, 100 * time.Millisecond},
		{"p99/one", []time.Duration{7}, 99, 7},
		{"p50/none", nil, 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(slices.Clone(tc.in), tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median(4,1,3,2) = %v, want 2.5", got)
	}
	if got := Median([]time.Duration{5, 1, 3}); got != 3 {
		t.Errorf("Median(5,1,3) = %v, want 3", got)
	}
}

func TestFailures(t *testing.T) {
	var f Failures
	if n, msgs := f.Result(); n != 0 || msgs != nil {
		t.Errorf("zero Failures.Result() = %d, %q, want 0, none", n, msgs)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				f.Addf("w%d: %d", w, i)
			}
		})
	}
	wg.Wait()
	n, msgs := f.Result()
	if n != 40 || len(msgs) != MaxFailures {
		t.Errorf("Failures.Result() = %d, %d messages, want 40, %d", n, len(msgs), MaxFailures)
	}
}
