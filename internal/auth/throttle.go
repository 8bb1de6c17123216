package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle slows password guessing down without letting a guesser lock the
// owner out of their own account. It counts failed logins three ways:
//
//   - per username and client address: 5 free failures, then a lock-out of
//     30 s that doubles with each further failure, up to 15 minutes;
//   - per client address, whatever the username: 20 free failures, then the
//     same growing lock-out;
//   - per username, from every address together: 10 free failures, then the
//     username is paced, not locked: its password checks must be at least 1 s
//     apart, doubling with each further failure up to 5 s.
//
// So a guesser at one address is locked out there and nowhere else; guessers
// at many addresses together get one check every 5 s at most; and the owner,
// from an address with no failures of its own, gets in after at most 5 s.
//
// Begin reserves a check before the password is hashed and the reservation
// counts as a failure until it ends, so requests already in flight cannot
// get more checks past the throttle than it would allow one after another.
//
// On several nodes the counts live in a ThrottleStore (Redis), so the
// budgets are the installation's, not each node's. When the store does not
// answer, each node falls back to its own counts in memory: guessing is
// still throttled, with one budget per node, until the store is back. A
// check the store failed makes the next StoreRetry count in memory without
// asking it, so a Redis that hangs costs one login its timeout, not every
// login; Fallbacks counts the checks counted in memory meanwhile.
type Throttle struct {
	mu    sync.Mutex
	pairs map[pairKey]*ThrottleEntry // per username and address
	addrs map[string]*ThrottleEntry  // per address
	users map[string]*ThrottleEntry  // per username, every address together
	now   func() time.Time
	store ThrottleStore // nil: the counts above are the only ones
	// storeAway is when the store may be asked again after it failed
	// (under mu); fallbacks counts the checks counted in memory since a
	// store is set.
	storeAway time.Time
	fallbacks atomic.Int64

	freePair, freeAddr, freeUser int
	// window is how long a key must stay quiet (no failure, no lock-out)
	// before its failures are forgotten.
	window time.Duration
	// lockBase doubles per failure past the free ones, up to lockMax.
	lockBase, lockMax time.Duration
	// paceBase doubles per username failure past the free ones, up to
	// paceMax: the least time between two checks of a paced username.
	paceBase, paceMax time.Duration
}

type pairKey struct{ username, addr string }

// ThrottleEntry is the state of one key of the throttle. A key that locks
// out (a username at an address, an address) is locked until Until; a
// username that is paced starts no check before Until.
type ThrottleEntry struct {
	Failures int
	Pending  int // checks let through and not yet ended
	Last     time.Time
	Until    time.Time
}

// ThrottleStore keeps the throttle's entries where every node of an
// installation sees them.
type ThrottleStore interface {
	// Update reads the entries of a username at an address, of the
	// address and of the username, lets f change them, and writes them
	// back, atomically with respect to every other Update (f may run more
	// than once). release, if not "", is a reservation the entries no
	// longer hold (Pending counts the others); f returns the one they take
	// now ("" for none). A reservation lapses by itself after a while, so
	// a node that dies mid-check holds nobody up for long.
	Update(ctx context.Context, username, addr string, now time.Time, release string, f func(pair, addr, user *ThrottleEntry) (reserve string)) error
	// Unlock clears the failures of a username at every address, of an
	// address for every username, or of the two together ("" for the one
	// not named).
	Unlock(ctx context.Context, username, addr string) error
}

// ErrStoreContended is what a ThrottleStore's Update returns when other
// nodes changed the same entries on every try.
var ErrStoreContended = errors.New("auth: throttle entries changed on every try")

// storeTimeout bounds one round trip to the ThrottleStore.
const storeTimeout = 2 * time.Second

// StoreRetry is how long the throttle counts in memory, without asking the
// store, after the store failed a check.
const StoreRetry = 5 * time.Second

// NewThrottle returns a throttle with the production policy described on
// Throttle. Failures are forgotten after 15 quiet minutes.
func NewThrottle(now func() time.Time) *Throttle {
	return &Throttle{
		pairs: make(map[pairKey]*ThrottleEntry),
		addrs: make(map[string]*ThrottleEntry),
		users: make(map[string]*ThrottleEntry),
		now:   now,

		freePair: 5, freeAddr: 20, freeUser: 10,
		window:   15 * time.Minute,
		lockBase: 30 * time.Second, lockMax: 15 * time.Minute,
		paceBase: time.Second, paceMax: 5 * time.Second,
	}
}

// SetStore keeps the counts in store from now on (several nodes); call it
// before the first Begin.
func (t *Throttle) SetStore(store ThrottleStore) { t.store = store }

// Fallbacks returns how many checks were counted in memory because the
// store had failed (always 0 without a store).
func (t *Throttle) Fallbacks() int64 { return t.fallbacks.Load() }

// storeUp reports whether the store may be asked now.
func (t *Throttle) storeUp(now time.Time) bool {
	if t.store == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return !now.Before(t.storeAway)
}

// Attempt is one password check that Begin let through. Exactly one of Fail,
// Succeed or Cancel ends it; calls after the first do nothing.
type Attempt struct {
	t              *Throttle
	username, addr string
	done           bool
	// paced is the username's next check time this attempt set, and
	// unpaced the one before, which Cancel puts back.
	paced, unpaced time.Time
	// reservation names the attempt in the ThrottleStore; "" when the
	// attempt was counted in memory.
	reservation string
}

// Begin asks to check a password for username from addr. When the throttle
// allows it, Begin reserves the check and returns an Attempt to end once the
// password has been checked; otherwise it returns how long to wait.
func (t *Throttle) Begin(username, addr string) (*Attempt, time.Duration) {
	now := t.now()
	if t.storeUp(now) {
		at := &Attempt{t: t, username: username, addr: addr}
		id := newReservation()
		var wait time.Duration
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := t.store.Update(ctx, username, addr, now, "", func(p, a, u *ThrottleEntry) string {
			if wait, at.paced, at.unpaced = t.begin(p, a, u, now); wait > 0 {
				return ""
			}
			return id
		})
		cancel()
		if err == nil {
			if wait > 0 {
				return nil, wait
			}
			at.reservation = id
			return at, 0
		}
		// The store is away: count in memory meanwhile. Other nodes
		// changing the same entries on every try is no sign of that: this
		// check is counted here, and the next one asks the store again.
		if !errors.Is(err, ErrStoreContended) {
			t.mu.Lock()
			t.storeAway = now.Add(StoreRetry)
			t.mu.Unlock()
		}
	}
	if t.store != nil {
		t.fallbacks.Add(1)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := pairKey{username, addr}
	p, a, u := t.pairs[key], t.addrs[addr], t.users[username]
	if p == nil {
		p = &ThrottleEntry{}
		t.pairs[key] = p
	}
	if a == nil {
		a = &ThrottleEntry{}
		t.addrs[addr] = a
	}
	if u == nil {
		u = &ThrottleEntry{}
		t.users[username] = u
	}
	wait, paced, unpaced := t.begin(p, a, u, now)
	if wait > 0 {
		return nil, wait
	}
	return &Attempt{t: t, username: username, addr: addr, paced: paced, unpaced: unpaced}, 0
}

// newReservation names a check in the ThrottleStore.
func newReservation() string {
	b := make([]byte, 9)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// begin decides on a check of p (the username at the address), a (the
// address) and u (the username) and, when it may start, reserves it: the
// wait, or the username's pacing it set (paced) and the one it replaced.
func (t *Throttle) begin(p, a, u *ThrottleEntry, now time.Time) (wait time.Duration, paced, unpaced time.Time) {
	wait = max(t.lockWait(p, t.freePair, now), t.lockWait(a, t.freeAddr, now), t.paceWait(u, now))
	if wait > 0 {
		return wait, time.Time{}, time.Time{}
	}
	p.Pending++
	a.Pending++
	if over := u.Failures + u.Pending + 1 - t.freeUser; over > 0 {
		unpaced = u.Until
		u.Until = now.Add(min(t.paceBase<<min(over-1, 20), t.paceMax))
		paced = u.Until
	}
	u.Pending++
	return 0, paced, unpaced
}

// lockWait is how long a new check of e must wait. Checks in flight count
// as failures: when they are all the lock-out still allows, the answer is
// the lock-out that follows if they all fail.
func (t *Throttle) lockWait(e *ThrottleEntry, free int, now time.Time) time.Duration {
	t.forgetLockout(e, now)
	if e.Until.After(now) {
		return e.Until.Sub(now)
	}
	// Unlocked, the key may take the free failures it has left and one
	// more, whose failure starts the (next) lock-out.
	allowed := max(1, free+1-e.Failures)
	if e.Pending < allowed {
		return 0
	}
	return t.lockFor(e.Failures + e.Pending - free)
}

// paceWait is how long a new check of a username must wait.
func (t *Throttle) paceWait(u *ThrottleEntry, now time.Time) time.Duration {
	t.forgetPace(u, now)
	if u.Failures+u.Pending < t.freeUser || !u.Until.After(now) {
		return 0
	}
	return u.Until.Sub(now)
}

// lockFor is the lock-out after over failures past the free ones.
func (t *Throttle) lockFor(over int) time.Duration {
	return min(t.lockBase<<min(over-1, 20), t.lockMax)
}

// forgetLockout clears the failures of a key that has been quiet, and not
// locked, for a whole window. The window is counted from the end of the
// last lock-out, so a guesser who waits each lock-out out still meets a
// longer one next time.
func (t *Throttle) forgetLockout(e *ThrottleEntry, now time.Time) {
	quiet := e.Last
	if e.Until.After(quiet) {
		quiet = e.Until
	}
	if e.Failures > 0 && !e.Until.After(now) && now.Sub(quiet) > t.window {
		e.Failures, e.Last, e.Until = 0, time.Time{}, time.Time{}
	}
}

// forgetPace clears the failures of a username that has been quiet for a
// whole window.
func (t *Throttle) forgetPace(u *ThrottleEntry, now time.Time) {
	if u.Failures > 0 && now.Sub(u.Last) > t.window {
		u.Failures, u.Last, u.Until = 0, time.Time{}, time.Time{}
	}
}

// Fail ends the attempt with a wrong password (or a refused one).
func (a *Attempt) Fail() {
	a.end(func(p, ad, u *ThrottleEntry, now time.Time) {
		a.t.failLockout(p, a.t.freePair, now)
		a.t.failLockout(ad, a.t.freeAddr, now)
		a.t.forgetPace(u, now)
		u.Failures++
		u.Last = now
	})
}

// Succeed ends the attempt with the right password. It clears the failures
// of the username at this address, and only there: the address keeps its
// count (one good account must not launder guesses at others), and so does
// the username elsewhere (the owner getting in says nothing about the
// guessers at other addresses).
func (a *Attempt) Succeed() {
	a.end(func(p, _, _ *ThrottleEntry, _ time.Time) {
		p.Failures, p.Last, p.Until = 0, time.Time{}, time.Time{}
	})
}

// Cancel ends an attempt whose password was never checked (the server was
// busy, or the store failed), giving its reservation back, and its turn of
// a paced username unless a later check has taken the next one.
func (a *Attempt) Cancel() {
	a.end(func(_, _, u *ThrottleEntry, _ time.Time) {
		if !a.paced.IsZero() && u.Until.Equal(a.paced) {
			u.Until = a.unpaced
		}
	})
}

func (a *Attempt) end(f func(p, ad, u *ThrottleEntry, now time.Time)) {
	if a == nil || a.done {
		return
	}
	a.done = true
	t := a.t
	now := t.now()
	if a.reservation != "" {
		// The store's Pending no longer counts the released reservation.
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		// A failure to record this leaves the reservation to lapse (the
		// check counted as a failure until then): safe, if strict.
		t.store.Update(ctx, a.username, a.addr, now, a.reservation, func(p, ad, u *ThrottleEntry) string {
			f(p, ad, u, now)
			return ""
		})
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Entries with a check pending are never swept, so they are all here.
	p, ad, u := t.pairs[pairKey{a.username, a.addr}], t.addrs[a.addr], t.users[a.username]
	p.Pending--
	ad.Pending--
	u.Pending--
	f(p, ad, u, now)
}

func (t *Throttle) failLockout(e *ThrottleEntry, free int, now time.Time) {
	t.forgetLockout(e, now)
	e.Failures++
	e.Last = now
	if over := e.Failures - free; over > 0 {
		if until := now.Add(t.lockFor(over)); until.After(e.Until) {
			e.Until = until
		}
	}
}

// sweep forgets keys with nothing pending whose failures are forgotten or
// were never there, so memory follows the recent guessing.
func (t *Throttle) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, e := range t.pairs {
		if t.forgetLockout(e, now); e.Pending == 0 && e.Failures == 0 {
			delete(t.pairs, k)
		}
	}
	for k, e := range t.addrs {
		if t.forgetLockout(e, now); e.Pending == 0 && e.Failures == 0 {
			delete(t.addrs, k)
		}
	}
	for k, u := range t.users {
		if t.forgetPace(u, now); u.Pending == 0 && u.Failures == 0 {
			delete(t.users, k)
		}
	}
}

// Unlock forgets the failed logins of username at every address, of addr
// for every username, or of the two together ("" for the one not named):
// what an operator does for a user locked out by a guesser or by their own
// typing. Checks in flight keep their reservations.
func (t *Throttle) Unlock(username, addr string) {
	if t.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		t.store.Unlock(ctx, username, addr)
		cancel()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clear := func(e *ThrottleEntry) { e.Failures, e.Last, e.Until = 0, time.Time{}, time.Time{} }
	for k, e := range t.pairs {
		if (username == "" || k.username == username) && (addr == "" || k.addr == addr) {
			clear(e)
		}
	}
	if username == "" {
		if e := t.addrs[addr]; e != nil {
			clear(e)
		}
	}
	if addr == "" {
		if u := t.users[username]; u != nil {
			clear(u)
		}
	}
}

// ShareThrottle keeps the login throttle's counts in store (the Redis of
// several nodes) from now on; call it before the service serves.
func (s *Service) ShareThrottle(store ThrottleStore) { s.throttle.SetStore(store) }

// ThrottleFallbacks returns how many login checks were counted in this
// node's memory because the shared store had failed.
func (s *Service) ThrottleFallbacks() int64 { return s.throttle.Fallbacks() }
