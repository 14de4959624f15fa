//go:build !linux

package benchutil

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

// TerminateSignal asks fleetca serve to drain and stop.
var TerminateSignal = os.Interrupt

// CheckPlatform fails: the benchmarks read CPU times from /proc.
func CheckPlatform() error {
	return errors.New("the benchmarks need Linux: they read the server's CPU time from /proc")
}

// SetDeathSignal does nothing here.
func SetDeathSignal(*exec.Cmd) {}

// ProcCPU fails here.
func ProcCPU(int) (CPUTimes, error) { return CPUTimes{}, CheckPlatform() }

// TreeCPU fails here.
func TreeCPU(int) (CPUTimes, error) { return CPUTimes{}, CheckPlatform() }

// MachineCPU fails here.
func MachineCPU() (busy, steal time.Duration, err error) { return 0, 0, CheckPlatform() }

// PeakRSS returns zero here.
func PeakRSS(int) int64 { return 0 }

// Children fails here.
func Children(int) ([]int, error) { return nil, CheckPlatform() }

// RSS returns zero here.
func RSS(int) int64 { return 0 }

// TreePSS returns zero here.
func TreePSS(int) int64 { return 0 }

// SelfCPU returns zero here.
func SelfCPU() CPUTimes { return CPUTimes{} }

// FSType does not know here.
func FSType(string) string { return "an unknown file system" }
