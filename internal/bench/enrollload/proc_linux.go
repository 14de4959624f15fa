package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// terminateSignal asks fleetca serve to drain and stop.
var terminateSignal = syscall.SIGTERM

// checkPlatform fails unless /proc is there to read a process's CPU time.
func checkPlatform() error {
	if _, err := procCPU(os.Getpid()); err != nil {
		return fmt.Errorf("cannot read process CPU times from /proc: %w", err)
	}
	return nil
}

// setDeathSignal makes the kernel kill the child if this process dies
// first, so that no fleetca serve outlives an interrupted benchmark.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// procCPU returns the user and system CPU time process pid has used, its
// exited threads included: utime and stime of /proc/<pid>/stat (proc(5)),
// in clock ticks.
func procCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(b, clockTick())
}

// parseStat reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte, tick time.Duration) (cpuTimes, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return cpuTimes{}, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[14-3], 10, 64)
	st, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuTimes{}, fmt.Errorf("stat: %w", err)
	}
	return cpuTimes{user: time.Duration(ut) * tick, sys: time.Duration(st) * tick}, nil
}

// clockTick is the unit of /proc's CPU times, 1/sysconf(_SC_CLK_TCK): the
// AT_CLKTCK entry of this process's auxiliary vector, or 1/100 s (what
// Linux uses on every architecture) if it cannot be read.
var clockTick = sync.OnceValue(func() time.Duration {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 10 * time.Millisecond
	}
	w := int(unsafe.Sizeof(uintptr(0)))
	word := func(p []byte) uint64 {
		if w == 4 {
			return uint64(binary.NativeEndian.Uint32(p))
		}
		return binary.NativeEndian.Uint64(p)
	}
	for i := 0; i+2*w <= len(b); i += 2 * w {
		if typ, val := word(b[i:]), word(b[i+w:]); typ == atClkTck && val > 0 {
			return time.Second / time.Duration(val)
		}
	}
	return 10 * time.Millisecond
})

// machineCPU returns the CPU time all CPUs of the machine have spent busy
// (user, nice, system, irq, softirq) and stolen by the hypervisor, from the
// first line of /proc/stat (proc(5)), in clock ticks.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(b, clockTick())
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat.
func parseProcStat(b []byte, tick time.Duration) (busy, steal time.Duration, err error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q is not the cpu line", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	busy = time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * tick
	return busy, time.Duration(v[7]) * tick, nil
}

// peakRSS returns the peak resident set size of process pid (VmHWM in
// /proc/<pid>/status), or 0 if it cannot be read.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// selfCPU returns this process's CPU time (the load generator's).
func selfCPU() cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	return cpuTimes{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

// fsType names the file system dir is on, for the report: fsync costs
// nothing on tmpfs, which would flatter the store.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "an unknown file system"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext2/3/4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (WARNING: fsync is free there; pass -tmp DIR on a disk)"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	}
	return fmt.Sprintf("file system type %#x", uint64(st.Type))
}
