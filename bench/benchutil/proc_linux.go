package benchutil

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

// TerminateSignal asks fleetca serve to drain and stop.
var TerminateSignal = syscall.SIGTERM

// CheckPlatform fails unless /proc is there to read a process's CPU time.
func CheckPlatform() error {
	if _, err := ProcCPU(os.Getpid()); err != nil {
		return fmt.Errorf("cannot read process CPU times from /proc: %w", err)
	}
	return nil
}

// SetDeathSignal makes the kernel kill the child if this process dies
// first, so that no server outlives an interrupted benchmark.
func SetDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// ProcCPU returns the user and system CPU time process pid has used, its
// exited threads included: utime and stime of /proc/<pid>/stat (proc(5)),
// in clock ticks. Children's time is not included.
func ProcCPU(pid int) (CPUTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTimes{}, err
	}
	return parseStat(b, clockTick())
}

// TreeCPU is ProcCPU of pid plus that of its live children, as listed in
// /proc/<pid>/task/<pid>/children (for a pre-forking server such as
// `openssl ocsp -multi`).
func TreeCPU(pid int) (CPUTimes, error) {
	t, err := ProcCPU(pid)
	if err != nil {
		return t, err
	}
	children, err := Children(pid)
	if err != nil {
		return t, err
	}
	for _, child := range children {
		if c, err := ProcCPU(child); err == nil {
			t.User += c.User
			t.Sys += c.Sys
		}
	}
	return t, nil
}

// Children lists the live children of process pid's main thread, from
// /proc/<pid>/task/<pid>/children (a pre-forking server's workers).
func Children(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if child, err := strconv.Atoi(f); err == nil {
			out = append(out, child)
		}
	}
	return out, nil
}

// parseStat reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte, tick time.Duration) (CPUTimes, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return CPUTimes{}, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return CPUTimes{}, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[14-3], 10, 64)
	st, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return CPUTimes{}, fmt.Errorf("stat: %w", err)
	}
	return CPUTimes{User: time.Duration(ut) * tick, Sys: time.Duration(st) * tick}, nil
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

// MachineCPU returns the CPU time all CPUs of the machine have spent busy
// (user, nice, system, irq, softirq) and stolen by the hypervisor, from the
// first line of /proc/stat (proc(5)), in clock ticks.
func MachineCPU() (busy, steal time.Duration, err error) {
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

// PeakRSS returns the peak resident set size of process pid in bytes
// (VmHWM in /proc/<pid>/status), or 0 if it cannot be read.
func PeakRSS(pid int) int64 { return statusBytes(pid, "VmHWM:") }

// RSS returns the resident set size of process pid in bytes (VmRSS in
// /proc/<pid>/status), or 0 if it cannot be read.
func RSS(pid int) int64 { return statusBytes(pid, "VmRSS:") }

// statusBytes reads a "kB" field of /proc/<pid>/status.
func statusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return kBField(b, field)
}

// kBField finds the line "field   N kB" in b and returns N KiB in bytes, or 0.
func kBField(b []byte, field string) int64 {
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// TreePSS returns the proportional set size of process pid and its live
// children (Pss in /proc/<pid>/smaps_rollup), in bytes: pages they share,
// as an nginx master shares its configuration with its workers, are
// counted once over all of them, where adding up their RSS would count
// them in each. It returns 0 if pid's cannot be read.
func TreePSS(pid int) int64 {
	read := func(pid int) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			return 0
		}
		return kBField(b, "Pss:")
	}
	total := read(pid)
	if total == 0 {
		return 0
	}
	children, _ := Children(pid)
	for _, c := range children {
		total += read(c)
	}
	return total
}

// SelfCPU returns this process's CPU time (the load generator's).
func SelfCPU() CPUTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return CPUTimes{}
	}
	return CPUTimes{User: time.Duration(ru.Utime.Nano()), Sys: time.Duration(ru.Stime.Nano())}
}

// FSType names the file system dir is on, for reports: fsync costs nothing
// on tmpfs, which would flatter the store.
func FSType(dir string) string {
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
