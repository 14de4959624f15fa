package benchutil

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	const tick = 10 * time.Millisecond
	tests := []struct {
		name     string
		stat     string
		want     CPUTimes
		wantFail bool
	}{
		{"ok/plain", "4242 (fleetca) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 9 0 100 0 0",
			CPUTimes{User: 1500 * time.Millisecond, Sys: 370 * time.Millisecond}, false},
		{"ok/name-with-parens-and-spaces", "1234 (fleetca (x) y) S 1 1234 1234 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 100 0 0\n",
			CPUTimes{User: 1500 * time.Millisecond, Sys: 250 * time.Millisecond}, false},
		{"ok/name-with-parens-and-spaces-2", "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5",
			CPUTimes{User: 30 * time.Millisecond, Sys: 40 * time.Millisecond}, false},
		{"fail/short", "7 (x) R 1 2 3", CPUTimes{}, true},
		{"fail/no-name", "7 x R 1", CPUTimes{}, true},
		{"fail/not-a-number", "7 (x) S 1 7 7 0 -1 0 0 0 0 0 u s 0 0", CPUTimes{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.stat), tick)
			if (err != nil) != tc.wantFail {
				t.Fatalf("parseStat() error = %v, want failure %v", err, tc.wantFail)
			}
			if got != tc.want {
				t.Errorf("parseStat() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  100 5 20 900 7 3 2 11 0 0\ncpu0 50 2 10 450 3 1 1 5 0 0\n"
	busy, steal, err := parseProcStat([]byte(stat), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if want := 130 * time.Millisecond; busy != want {
		t.Errorf("busy = %v, want %v (user+nice+system+irq+softirq)", busy, want)
	}
	if want := 11 * time.Millisecond; steal != want {
		t.Errorf("steal = %v, want %v", steal, want)
	}
	if _, _, err := parseProcStat([]byte("intr 1 2 3\n"), time.Millisecond); err == nil {
		t.Error("parseProcStat(no cpu line) succeeded, want an error")
	}
}

func TestClockTick(t *testing.T) {
	if got := clockTick(); got <= 0 || got > time.Second {
		t.Errorf("clockTick() = %v, want a fraction of a second", got)
	}
}

func TestPeakRSS(t *testing.T) {
	if got := PeakRSS(os.Getpid()); got < 1<<20 {
		t.Errorf("PeakRSS(self) = %d bytes, want at least 1 MiB", got)
	}
	if got := PeakRSS(-1); got != 0 {
		t.Errorf("PeakRSS(-1) = %d, want 0", got)
	}
}

func TestRSSAndPSS(t *testing.T) {
	if got := RSS(os.Getpid()); got < 1<<20 {
		t.Errorf("RSS(self) = %d bytes, want at least 1 MiB", got)
	}
	if got := TreePSS(os.Getpid()); got < 1<<20 {
		t.Errorf("TreePSS(self) = %d bytes, want at least 1 MiB", got)
	}
	if got := RSS(-1) + TreePSS(-1); got != 0 {
		t.Errorf("RSS(-1) + TreePSS(-1) = %d, want 0", got)
	}
	if _, err := Children(os.Getpid()); err != nil {
		t.Errorf("Children(self) error = %v", err)
	}
}

func TestKBField(t *testing.T) {
	status := "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n"
	if got := kBField([]byte(status), "VmRSS:"); got != 1024<<10 {
		t.Errorf("kBField(VmRSS) = %d, want %d", got, 1024<<10)
	}
	if got := kBField([]byte(status), "Pss:"); got != 0 {
		t.Errorf("kBField(missing) = %d, want 0", got)
	}
}
