package auth_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
)

// newClock is the tests' clock for the throttle, tokens and tickets.
func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// MustWait fails the test unless the throttle makes username at addr wait
// want. A check it lets through instead is cancelled.
func MustWait(tb testing.TB, th *auth.Throttle, username, addr string, want time.Duration) {
	tb.Helper()
	a, got := th.Begin(username, addr)
	a.Cancel()
	if got != want {
		tb.Fatalf("Begin(%q, %q) waits %s, want %s", username, addr, got, want)
	}
}

// MustFail fails the test unless the throttle lets a check of username at
// addr through, and records that check as failed.
func MustFail(tb testing.TB, th *auth.Throttle, username, addr string) {
	tb.Helper()
	a, wait := th.Begin(username, addr)
	if wait != 0 {
		tb.Fatalf("Begin(%q, %q) waits %s, want a check", username, addr, wait)
	}
	a.Fail()
}

// addr returns a distinct client address, so that a test of the per-user
// limit does not also trip the per-address one.
func addr(i int) string { return fmt.Sprintf("198.51.100.%d", i) }

const guesser = "203.0.113.7"

func TestThrottleLocksUserAtAddressWithGrowingWait(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	for range 5 {
		MustFail(t, th, "alice", guesser)
		MustWait(t, th, "alice", guesser, 0)
	}

	// Each failure past the five free ones locks alice out at that address
	// for twice as long as the one before; her waiting is counted from the
	// failure. Alice elsewhere, and bob there, are not locked out.
	for _, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		MustFail(t, th, "alice", guesser)
		MustWait(t, th, "alice", guesser, want)
		MustWait(t, th, "alice", addr(100), 0)
		MustWait(t, th, "bob", guesser, 0)
		c.Advance(want - time.Second)
		MustWait(t, th, "alice", guesser, time.Second)
		c.Advance(time.Second)
		MustWait(t, th, "alice", guesser, 0)
	}
}

// TestThrottleWaitIsCapped: a guesser who waits out every lock-out meets
// longer ones, up to 15 minutes, rather than the count being forgotten
// while it is locked out.
func TestThrottleWaitIsCapped(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	var waits []time.Duration
	for range 13 {
		a, wait := th.Begin("alice", guesser)
		if wait > 0 {
			waits = append(waits, wait)
			c.Advance(wait)
			a, wait = th.Begin("alice", guesser)
		}
		if wait != 0 {
			t.Fatalf("after waiting, Begin waits %s more", wait)
		}
		a.Fail()
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	MustWait(t, th, "alice", guesser, 15*time.Minute)
}

func TestThrottleForgetsOldFailures(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	for range 5 {
		MustFail(t, th, "alice", guesser)
	}
	c.Advance(15*time.Minute + time.Second)
	for range 5 {
		MustFail(t, th, "alice", guesser)
		MustWait(t, th, "alice", guesser, 0)
	}
	MustFail(t, th, "alice", guesser)
	MustWait(t, th, "alice", guesser, 30*time.Second)

	t.Run("only after a quiet window past the lock-out", func(t *testing.T) {
		// The 30 s lock-out ended 14 minutes ago: not forgotten yet.
		c.Advance(30*time.Second + 14*time.Minute)
		MustFail(t, th, "alice", guesser)
		MustWait(t, th, "alice", guesser, time.Minute)
		c.Advance(time.Minute + 15*time.Minute + time.Second)
		MustWait(t, th, "alice", guesser, 0)
		for range 5 {
			MustFail(t, th, "alice", guesser)
		}
		MustWait(t, th, "alice", guesser, 0)
	})
}

func TestThrottleLimitsAddress(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	// One guess at each of twenty accounts is free ...
	for i := range 20 {
		MustFail(t, th, fmt.Sprintf("user%d", i), guesser)
	}
	MustWait(t, th, "newuser", guesser, 0)
	// ... the twenty-first locks the address out for every account.
	MustFail(t, th, "user20", guesser)
	MustWait(t, th, "newuser", guesser, 30*time.Second)
	MustWait(t, th, "user0", guesser, 30*time.Second)
	// Other addresses, and those accounts from them, are not affected.
	MustWait(t, th, "newuser", "203.0.113.8", 0)
	MustWait(t, th, "user0", "203.0.113.8", 0)
}

// TestThrottlePacesUsername: failures from everywhere together never lock
// a username out; past ten, its checks are spaced by a second, doubling up
// to five.
func TestThrottlePacesUsername(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	for i := range 10 {
		MustFail(t, th, "alice", addr(i))
	}
	MustWait(t, th, "alice", addr(100), 0)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		MustFail(t, th, "alice", addr(10+i))
		MustWait(t, th, "alice", addr(100), want)
		MustWait(t, th, "bob", addr(100), 0)
		c.Advance(want)
	}
	// Fifteen quiet minutes and the username is free again.
	c.Advance(15*time.Minute + time.Second)
	for i := range 10 {
		MustFail(t, th, "alice", addr(20+i))
	}
	MustWait(t, th, "alice", addr(100), 0)
}

// TestThrottleTrickle: guessers at as many addresses as they like get one
// check of a username every 5 s, after the ten free ones.
func TestThrottleTrickle(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := auth.NewThrottle(c.Now)
	end := c.Now().Add(time.Hour)
	checks := 0
	for i := 0; c.Now().Before(end); i++ {
		a, wait := th.Begin("alice", fmt.Sprintf("2001:db8::%x", i))
		if wait > 5*time.Second {
			t.Fatalf("a fresh address waits %s, more than 5 s", wait)
		}
		if wait > 0 {
			c.Advance(wait)
			continue
		}
		checks++
		a.Fail()
	}
	if max := 10 + 4 + int(time.Hour/(5*time.Second)); checks > max {
		t.Fatalf("%d checks in an hour, want at most %d", checks, max)
	}
}

func TestThrottleSucceed(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	const home = "192.0.2.1"
	for range 5 {
		MustFail(t, th, "alice", home)
	}
	a, wait := th.Begin("alice", home)
	if wait != 0 {
		t.Fatalf("the sixth check waits %s", wait)
	}
	a.Succeed()
	// Her count at home starts again from zero: five more free failures.
	for range 5 {
		MustFail(t, th, "alice", home)
	}
	MustWait(t, th, "alice", home, 0)

	t.Run("does not clear the address", func(t *testing.T) {
		for i := range 20 {
			MustFail(t, th, fmt.Sprintf("victim%d", i), guesser)
		}
		// A good login to the guesser's own account must not launder the
		// guesses at others: the next failure still locks the address.
		a, wait := th.Begin("mallory", guesser)
		if wait != 0 {
			t.Fatalf("mallory waits %s", wait)
		}
		a.Succeed()
		MustFail(t, th, "victim20", guesser)
		MustWait(t, th, "mallory", guesser, 30*time.Second)
		MustWait(t, th, "victim0", guesser, 30*time.Second)
	})
}

// TestThrottleCountsChecksInFlight: a check let through counts as a
// failure until it ends, so parallel requests get no more checks than the
// lock-out allows one after another.
func TestThrottleCountsChecksInFlight(t *testing.T) {
	t.Parallel()
	th := auth.NewThrottle(newClock().Now)
	var inFlight []*auth.Attempt
	for range 6 {
		a, wait := th.Begin("alice", guesser)
		if wait != 0 {
			t.Fatalf("check %d waits %s", len(inFlight)+1, wait)
		}
		inFlight = append(inFlight, a)
	}
	// If the six fail, alice waits 30 s there.
	MustWait(t, th, "alice", guesser, 30*time.Second)
	inFlight[0].Cancel()
	inFlight[0].Fail() // ended already: does nothing
	MustWait(t, th, "alice", guesser, 0)
	for _, a := range inFlight[1:] {
		a.Fail()
	}
	MustWait(t, th, "alice", guesser, 0)
	MustFail(t, th, "alice", guesser)
	MustWait(t, th, "alice", guesser, 30*time.Second)
}

func TestThrottleConcurrent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(i int) string
		// checks is what the throttle lets through: the free failures and
		// the one whose failure locks (or paces) the key.
		checks int
		wait   time.Duration
	}{
		{"one address", func(int) string { return guesser }, 6, 30 * time.Second},
		{"many addresses", addr, 11, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			th := auth.NewThrottle(newClock().Now)
			var wg sync.WaitGroup
			var checks atomic.Int32
			for i := range 50 {
				wg.Go(func() {
					if a, wait := th.Begin("alice", tt.addr(i)); wait == 0 {
						checks.Add(1)
						a.Fail()
					}
				})
			}
			wg.Wait()
			if n := int(checks.Load()); n != tt.checks {
				t.Fatalf("%d of 50 concurrent checks got through, want %d", n, tt.checks)
			}
			MustWait(t, th, "alice", tt.addr(0), tt.wait)
		})
	}
}

// TestThrottleUnlock: an unlock of a username clears its lock-outs at
// every address and its pace, and no address's own count; an unlock of an
// address clears that address (for every username) and nothing else; both
// together clear only that pair. A lock-out grows from scratch afterwards.
func TestThrottleUnlock(t *testing.T) {
	t.Parallel()
	lockOut := func(th *auth.Throttle) {
		for range 6 {
			MustFail(t, th, "alice", guesser)
		}
		for i := range 10 {
			MustFail(t, th, "carol", addr(i)) // carol paced from everywhere
		}
		for i := range 21 { // the guesser's address locked for everyone
			MustFail(t, th, fmt.Sprintf("user%d", i), "192.0.2.55")
		}
	}
	t.Run("username", func(t *testing.T) {
		t.Parallel()
		th := auth.NewThrottle(newClock().Now)
		lockOut(th)
		MustWait(t, th, "alice", guesser, 30*time.Second)
		th.Unlock("alice", "")
		MustWait(t, th, "alice", guesser, 0)
		th.Unlock("carol", "")
		MustWait(t, th, "carol", addr(50), 0)
		MustWait(t, th, "dave", "192.0.2.55", 30*time.Second) // the address is still locked
		// Counting starts over: five free failures again.
		for range 5 {
			MustFail(t, th, "alice", guesser)
		}
		MustWait(t, th, "alice", guesser, 0)
		MustFail(t, th, "alice", guesser)
		MustWait(t, th, "alice", guesser, 30*time.Second)
	})
	t.Run("address", func(t *testing.T) {
		t.Parallel()
		th := auth.NewThrottle(newClock().Now)
		lockOut(th)
		th.Unlock("", "192.0.2.55")
		MustWait(t, th, "dave", "192.0.2.55", 0)
		MustWait(t, th, "alice", guesser, 30*time.Second)
	})
	t.Run("both", func(t *testing.T) {
		t.Parallel()
		th := auth.NewThrottle(newClock().Now)
		lockOut(th)
		MustFail(t, th, "alice", addr(77))
		th.Unlock("alice", addr(77))
		th.Unlock("alice", guesser)
		MustWait(t, th, "alice", guesser, 0)
		MustWait(t, th, "user3", "192.0.2.55", 30*time.Second)
	})
}

// fakeStore is a ThrottleStore that keeps its entries in a map, or fails
// every call with err while err is set.
type fakeStore struct {
	mu      sync.Mutex
	err     error
	calls   int
	entries map[string]*auth.ThrottleEntry
}

func (s *fakeStore) Update(_ context.Context, username, addr string, _ time.Time, _ string,
	f func(p, a, u *auth.ThrottleEntry) string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return s.err
	}
	get := func(k string) *auth.ThrottleEntry {
		if s.entries[k] == nil {
			s.entries[k] = &auth.ThrottleEntry{}
		}
		return s.entries[k]
	}
	f(get("pair:"+username+"|"+addr), get("addr:"+addr), get("user:"+username))
	return nil
}

func (s *fakeStore) Unlock(context.Context, string, string) error { return nil }

func (s *fakeStore) set(err error) (calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	return s.calls
}

// A store that fails is asked again only after StoreRetry: meanwhile the
// checks are counted in memory, and counted as fallbacks; contention is no
// failure of the store, and the next check asks it again.
func TestThrottleStoreFallback(t *testing.T) {
	c := newClock()
	th := auth.NewThrottle(c.Now)
	store := &fakeStore{entries: map[string]*auth.ThrottleEntry{}}
	th.SetStore(store)

	MustFail(t, th, "ann", guesser)
	if got := th.Fallbacks(); got != 0 {
		t.Fatalf("fallbacks with the store up = %d, want 0", got)
	}
	if e := store.entries["pair:ann|"+guesser]; e == nil || e.Failures != 1 {
		t.Fatalf("the store's entry = %+v, want one failure", e)
	}

	calls := store.set(errors.New("redis: connection refused"))
	for range 3 {
		MustFail(t, th, "ann", guesser)
	}
	if got := store.set(errors.New("redis: connection refused")) - calls; got != 1 {
		t.Fatalf("the failing store was asked %d times in 3 checks, want once", got)
	}
	if got := th.Fallbacks(); got != 3 {
		t.Fatalf("fallbacks = %d, want 3", got)
	}
	// Counted in memory, the guessing is still throttled: 3 failures here,
	// 2 more free and one past them, then a lock-out.
	for range 3 {
		MustFail(t, th, "ann", guesser)
	}
	MustWait(t, th, "ann", guesser, 30*time.Second)

	// Back after StoreRetry: the store answers again, with its own counts.
	c.Advance(auth.StoreRetry)
	calls = store.set(nil)
	MustFail(t, th, "bob", addr(1))
	if got := store.set(nil) - calls; got != 2 {
		t.Fatalf("the store was asked %d times for a check after StoreRetry, want 2 (begin, fail)", got)
	}
	fallbacks := th.Fallbacks()

	calls = store.set(auth.ErrStoreContended)
	MustWait(t, th, "bob", addr(2), 0)
	MustWait(t, th, "bob", addr(3), 0)
	if got := store.set(nil) - calls; got < 2 {
		t.Fatalf("after contention the store was asked %d times in 2 checks, want every time", got)
	}
	if got := th.Fallbacks() - fallbacks; got != 2 {
		t.Fatalf("fallbacks under contention = %d, want 2", got)
	}
}
