package auth

import (
	"sync"
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
type Throttle struct {
	mu    sync.Mutex
	pairs map[pairKey]*lockout // per username and address
	addrs map[string]*lockout  // per address
	users map[string]*pace     // per username, every address together
	now   func() time.Time

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

// lockout is the state of a key that is locked out after too many failures.
type lockout struct {
	failures    int
	pending     int // checks let through and not yet ended
	last        time.Time
	lockedUntil time.Time
}

// pace is the state of a username that is slowed down after too many
// failures from everywhere.
type pace struct {
	failures int
	pending  int
	last     time.Time
	next     time.Time // no check of the username starts before this
}

// NewThrottle returns a throttle with the production policy described on
// Throttle. Failures are forgotten after 15 quiet minutes.
func NewThrottle(now func() time.Time) *Throttle {
	return &Throttle{
		pairs: make(map[pairKey]*lockout),
		addrs: make(map[string]*lockout),
		users: make(map[string]*pace),
		now:   now,

		freePair: 5, freeAddr: 20, freeUser: 10,
		window:   15 * time.Minute,
		lockBase: 30 * time.Second, lockMax: 15 * time.Minute,
		paceBase: time.Second, paceMax: 5 * time.Second,
	}
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
}

// Begin asks to check a password for username from addr. When the throttle
// allows it, Begin reserves the check and returns an Attempt to end once the
// password has been checked; otherwise it returns how long to wait.
func (t *Throttle) Begin(username, addr string) (*Attempt, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	p, a, u := t.pairs[pairKey{username, addr}], t.addrs[addr], t.users[username]
	wait := max(t.lockWait(p, t.freePair, now), t.lockWait(a, t.freeAddr, now), t.paceWait(u, now))
	if wait > 0 {
		return nil, wait
	}
	if p == nil {
		p = &lockout{}
		t.pairs[pairKey{username, addr}] = p
	}
	if a == nil {
		a = &lockout{}
		t.addrs[addr] = a
	}
	if u == nil {
		u = &pace{}
		t.users[username] = u
	}
	p.pending++
	a.pending++
	at := &Attempt{t: t, username: username, addr: addr}
	if over := u.failures + u.pending + 1 - t.freeUser; over > 0 {
		at.unpaced = u.next
		u.next = now.Add(min(t.paceBase<<min(over-1, 20), t.paceMax))
		at.paced = u.next
	}
	u.pending++
	return at, 0
}

// lockWait is how long a new check of e must wait. Checks in flight count
// as failures: when they are all the lock-out still allows, the answer is
// the lock-out that follows if they all fail.
func (t *Throttle) lockWait(e *lockout, free int, now time.Time) time.Duration {
	if e == nil {
		return 0
	}
	t.forgetLockout(e, now)
	if e.lockedUntil.After(now) {
		return e.lockedUntil.Sub(now)
	}
	// Unlocked, the key may take the free failures it has left and one
	// more, whose failure starts the (next) lock-out.
	allowed := max(1, free+1-e.failures)
	if e.pending < allowed {
		return 0
	}
	return t.lockFor(e.failures + e.pending - free)
}

// paceWait is how long a new check of a username must wait.
func (t *Throttle) paceWait(u *pace, now time.Time) time.Duration {
	if u == nil {
		return 0
	}
	t.forgetPace(u, now)
	if u.failures+u.pending < t.freeUser || !u.next.After(now) {
		return 0
	}
	return u.next.Sub(now)
}

// lockFor is the lock-out after over failures past the free ones.
func (t *Throttle) lockFor(over int) time.Duration {
	return min(t.lockBase<<min(over-1, 20), t.lockMax)
}

// forgetLockout clears the failures of a key that has been quiet, and not
// locked, for a whole window. The window is counted from the end of the
// last lock-out, so a guesser who waits each lock-out out still meets a
// longer one next time.
func (t *Throttle) forgetLockout(e *lockout, now time.Time) {
	quiet := e.last
	if e.lockedUntil.After(quiet) {
		quiet = e.lockedUntil
	}
	if e.failures > 0 && !e.lockedUntil.After(now) && now.Sub(quiet) > t.window {
		e.failures, e.last, e.lockedUntil = 0, time.Time{}, time.Time{}
	}
}

// forgetPace clears the failures of a username that has been quiet for a
// whole window.
func (t *Throttle) forgetPace(u *pace, now time.Time) {
	if u.failures > 0 && now.Sub(u.last) > t.window {
		u.failures, u.last, u.next = 0, time.Time{}, time.Time{}
	}
}

// Fail ends the attempt with a wrong password (or a refused one).
func (a *Attempt) Fail() {
	a.end(func(p, ad *lockout, u *pace, now time.Time) {
		a.t.failLockout(p, a.t.freePair, now)
		a.t.failLockout(ad, a.t.freeAddr, now)
		a.t.forgetPace(u, now)
		u.failures++
		u.last = now
	})
}

// Succeed ends the attempt with the right password. It clears the failures
// of the username at this address, and only there: the address keeps its
// count (one good account must not launder guesses at others), and so does
// the username elsewhere (the owner getting in says nothing about the
// guessers at other addresses).
func (a *Attempt) Succeed() {
	a.end(func(p, _ *lockout, _ *pace, _ time.Time) {
		p.failures, p.last, p.lockedUntil = 0, time.Time{}, time.Time{}
	})
}

// Cancel ends an attempt whose password was never checked (the server was
// busy, or the store failed), giving its reservation back, and its turn of
// a paced username unless a later check has taken the next one.
func (a *Attempt) Cancel() {
	a.end(func(_, _ *lockout, u *pace, _ time.Time) {
		if !a.paced.IsZero() && u.next.Equal(a.paced) {
			u.next = a.unpaced
		}
	})
}

func (a *Attempt) end(f func(p, ad *lockout, u *pace, now time.Time)) {
	if a == nil || a.done {
		return
	}
	a.done = true
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	// Entries with a check pending are never swept, so they are all here.
	p, ad, u := t.pairs[pairKey{a.username, a.addr}], t.addrs[a.addr], t.users[a.username]
	p.pending--
	ad.pending--
	u.pending--
	f(p, ad, u, t.now())
}

func (t *Throttle) failLockout(e *lockout, free int, now time.Time) {
	t.forgetLockout(e, now)
	e.failures++
	e.last = now
	if over := e.failures - free; over > 0 {
		if until := now.Add(t.lockFor(over)); until.After(e.lockedUntil) {
			e.lockedUntil = until
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
		if t.forgetLockout(e, now); e.pending == 0 && e.failures == 0 {
			delete(t.pairs, k)
		}
	}
	for k, e := range t.addrs {
		if t.forgetLockout(e, now); e.pending == 0 && e.failures == 0 {
			delete(t.addrs, k)
		}
	}
	for k, u := range t.users {
		if t.forgetPace(u, now); u.pending == 0 && u.failures == 0 {
			delete(t.users, k)
		}
	}
}

// Unlock forgets the failed logins of username at every address, of addr
// for every username, or of the two together ("" for the one not named):
// what an operator does for a user locked out by a guesser or by their own
// typing. Checks in flight keep their reservations.
func (t *Throttle) Unlock(username, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear := func(e *lockout) { e.failures, e.last, e.lockedUntil = 0, time.Time{}, time.Time{} }
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
			u.failures, u.last, u.next = 0, time.Time{}, time.Time{}
		}
	}
}
