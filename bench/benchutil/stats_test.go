package benchutil

import (
	"errors"
	"testing"
	"time"
)

// TestTimeOp checks that TimeOp calls op at least once, returns a time per
// call, and stops at op's first error.
func TestTimeOp(t *testing.T) {
	calls := 0
	d, err := TimeOp(func() error { calls++; return nil }, 0)
	if err != nil || calls != 1 || d < 0 {
		t.Errorf("TimeOp(d=0) = %v, %v after %d calls; want one call, no error", d, err, calls)
	}
	boom := errors.New("boom")
	calls = 0
	if _, err := TimeOp(func() error { calls++; return boom }, time.Hour); !errors.Is(err, boom) || calls != 1 {
		t.Errorf("TimeOp(failing op) = %v after %d calls; want boom after one", err, calls)
	}
}
