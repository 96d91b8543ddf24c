package bench

import (
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
// which Linux reports in KiB.
func maxRSSBytes(state any) int64 {
	ru, ok := state.(*syscall.Rusage)
	if !ok {
		return 0
	}
	return ru.Maxrss << 10
}
