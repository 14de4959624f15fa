package benchutil

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := []byte("1234 (fleetca (x) y) S 1 1234 1234 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 9 0 100 0 0\n")
	got, err := parseStat(line, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPUTimes{User: 1500 * time.Millisecond, Sys: 250 * time.Millisecond}); got != want {
		t.Errorf("parseStat() = %+v, want %+v", got, want)
	}
	if _, err := parseStat([]byte("1234 fleetca S 1"), time.Millisecond); err == nil {
		t.Error("parseStat(no parentheses) = nil error, want one")
	}
}
