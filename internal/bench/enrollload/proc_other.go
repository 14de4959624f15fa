//go:build !linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

var terminateSignal = os.Interrupt

func checkPlatform() error {
	return errors.New("enrollload needs Linux: it reads the server's CPU time from /proc")
}

func setDeathSignal(*exec.Cmd) {}

func procCPU(int) (cpuTimes, error) { return cpuTimes{}, checkPlatform() }

func machineCPU() (busy, steal time.Duration, err error) { return 0, 0, checkPlatform() }

func peakRSS(int) int64 { return 0 }

func selfCPU() cpuTimes { return cpuTimes{} }

func fsType(string) string { return "an unknown file system" }
