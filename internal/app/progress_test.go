package app

import (
	"testing"
	"testing/synctest"
	"time"
)

// A zombie: records wait and nothing moves. Liveness fails once the
// progress timeout has passed, and recovers with the next progress.
func TestProgressZombieFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProgress(time.Minute, nil)
		if err := p.check(100); err != nil {
			t.Fatalf("check at start = %v, want live", err)
		}
		time.Sleep(59 * time.Second)
		if err := p.check(100); err != nil {
			t.Fatalf("check after 59s = %v, want live", err)
		}
		time.Sleep(2 * time.Second)
		if err := p.check(100); err == nil {
			t.Fatal("check after 61s without progress = live, want a failure")
		}
		p.mark()
		if err := p.check(100); err != nil {
			t.Fatalf("check after progress = %v, want live", err)
		}
	})
}

// An idle enricher with nothing waiting stays live however long it idles.
func TestProgressIdleStaysLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProgress(time.Minute, nil)
		for range 10 {
			time.Sleep(time.Hour)
			if err := p.check(0); err != nil {
				t.Fatalf("check while idle = %v, want live", err)
			}
		}
	})
}

// Records that arrive after a long idle spell get the whole timeout
// before liveness fails.
func TestProgressWaitAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProgress(time.Minute, nil)
		time.Sleep(time.Hour)
		p.check(0)
		time.Sleep(time.Second)
		if err := p.check(5); err != nil {
			t.Fatalf("check when records first wait = %v, want live", err)
		}
		time.Sleep(30 * time.Second)
		if err := p.check(5); err != nil {
			t.Fatalf("check after 30s = %v, want live", err)
		}
		time.Sleep(31 * time.Second)
		if err := p.check(5); err == nil {
			t.Fatal("check after 61s of waiting = live, want a failure")
		}
	})
}
