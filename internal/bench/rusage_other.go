//go:build !linux

package bench

import "time"

// NOTE: CPU time and peak RSS are read only on Linux; elsewhere the bench
// reports them as zero.

func cpuTime() time.Duration { return 0 }

func maxRSSBytes(any) int64 { return 0 }

func peakRSS() int64 { return 0 }
