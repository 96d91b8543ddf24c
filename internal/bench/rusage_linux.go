package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime returns the user plus system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSSBytes returns the peak resident set size in a child's rusage,
// which Linux reports in KiB. See peakRSS for why it overstates.
func maxRSSBytes(state any) int64 {
	ru, ok := state.(*syscall.Rusage)
	if !ok {
		return 0
	}
	return ru.Maxrss << 10
}

// peakRSS returns this process's peak resident set size, VmHWM in
// /proc/self/status, in bytes. A child's rusage is no substitute: Linux
// carries the parent's peak into it when the child execs from a vfork,
// as os/exec does, so it reports at least the bench's own RSS.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
