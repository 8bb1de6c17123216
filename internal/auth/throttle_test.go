package auth_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
)

// clock is a settable time source for the throttle, tokens and tickets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// MustWait fails the test unless the throttle makes username at addr wait want.
func MustWait(tb testing.TB, th *auth.Throttle, username, addr string, want time.Duration) {
	tb.Helper()
	if got := th.Wait(username, addr); got != want {
		tb.Fatalf("Wait(%q, %q) = %s, want %s", username, addr, got, want)
	}
}

// addr returns a distinct client address, so that a test of the per-user
// limit does not also trip the per-address one.
func addr(i int) string { return fmt.Sprintf("198.51.100.%d", i) }

func TestThrottleLocksUserWithGrowingWait(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	for i := range 5 {
		th.Fail("alice", addr(i))
		MustWait(t, th, "alice", addr(100), 0)
	}

	// Each failure past the five free ones locks alice out for twice as long
	// as the one before; her waiting is counted from the failure.
	for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		th.Fail("alice", addr(10+i))
		MustWait(t, th, "alice", addr(100), want)
		MustWait(t, th, "bob", addr(100), 0)
		c.Advance(want - time.Second)
		MustWait(t, th, "alice", addr(100), time.Second)
		c.Advance(time.Second)
		MustWait(t, th, "alice", addr(100), 0)
	}
}

func TestThrottleWaitIsCapped(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	for i := range 100 {
		th.Fail("alice", addr(i))
	}
	MustWait(t, th, "alice", addr(200), 15*time.Minute)
}

func TestThrottleForgetsOldFailures(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	for i := range 5 {
		th.Fail("alice", addr(i))
	}
	c.Advance(15*time.Minute + time.Second)
	for i := range 5 {
		th.Fail("alice", addr(10+i))
		MustWait(t, th, "alice", addr(100), 0)
	}
	th.Fail("alice", addr(20))
	MustWait(t, th, "alice", addr(100), 30*time.Second)
}

func TestThrottleLimitsAddress(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	const guesser = "203.0.113.7"
	// One guess at each of twenty accounts is free ...
	for i := range 20 {
		th.Fail(fmt.Sprintf("user%d", i), guesser)
	}
	MustWait(t, th, "newuser", guesser, 0)
	// ... the twenty-first locks the address out for every account.
	th.Fail("user20", guesser)
	MustWait(t, th, "newuser", guesser, 30*time.Second)
	MustWait(t, th, "user0", guesser, 30*time.Second)
	// Other addresses, and those accounts from them, are not affected.
	MustWait(t, th, "newuser", "203.0.113.8", 0)
	MustWait(t, th, "user0", "203.0.113.8", 0)
}

func TestThrottleSucceed(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	const home = "192.0.2.1"
	for i := range 6 {
		th.Fail("alice", addr(i))
	}
	MustWait(t, th, "alice", home, 30*time.Second)
	th.Succeed("alice")
	MustWait(t, th, "alice", home, 0)
	// Her count starts again from zero: five more free failures.
	for i := range 5 {
		th.Fail("alice", addr(10+i))
	}
	MustWait(t, th, "alice", home, 0)

	t.Run("does not clear the address", func(t *testing.T) {
		const guesser = "203.0.113.7"
		for i := range 21 {
			th.Fail(fmt.Sprintf("victim%d", i), guesser)
		}
		// A good login to the guesser's own account must not launder the
		// guesses at others.
		th.Succeed("mallory")
		MustWait(t, th, "mallory", guesser, 30*time.Second)
		MustWait(t, th, "victim0", guesser, 30*time.Second)
	})
}

func TestThrottleConcurrent(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			th.Fail("alice", addr(i))
			th.Wait("alice", addr(i))
		})
	}
	wg.Wait()
	// 50 failures: 45 past the free five, so the wait is at its cap.
	MustWait(t, th, "alice", addr(200), 15*time.Minute)
}
