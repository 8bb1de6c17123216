package auth

import (
	"sync"
	"time"
)

// Throttle counts failed logins per username and per client address and
// locks a key out for a growing time once it fails too often. It is checked
// before the password is, so a locked-out guesser costs no hashing.
type Throttle struct {
	mu      sync.Mutex
	entries map[string]*throttleEntry
	now     func() time.Time
	// free failures before the lock-out starts, per kind of key
	freeUser, freeAddr int
	window             time.Duration
	base, max          time.Duration
}

type throttleEntry struct {
	failures    int
	first       time.Time
	lockedUntil time.Time
}

// NewThrottle returns a throttle with the production policy: 5 failures per
// username or 20 per address within 15 minutes, then a lock-out of 30 s that
// doubles with each further failure, up to 15 minutes.
func NewThrottle(now func() time.Time) *Throttle {
	return &Throttle{
		entries:  make(map[string]*throttleEntry),
		now:      now,
		freeUser: 5, freeAddr: 20,
		window: 15 * time.Minute,
		base:   30 * time.Second, max: 15 * time.Minute,
	}
}

func userKey(username string) string { return "u:" + username }
func addrKey(addr string) string     { return "a:" + addr }

// Wait returns how long the username and address must wait before they may
// try again; zero when they may try now.
func (t *Throttle) Wait(username, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range []string{userKey(username), addrKey(addr)} {
		if e := t.entries[k]; e != nil && e.lockedUntil.After(now) {
			wait = max(wait, e.lockedUntil.Sub(now))
		}
	}
	return wait
}

// Fail records a failed login.
func (t *Throttle) Fail(username, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.fail(userKey(username), t.freeUser, now)
	t.fail(addrKey(addr), t.freeAddr, now)
}

func (t *Throttle) fail(key string, free int, now time.Time) {
	e := t.entries[key]
	if e == nil || (now.Sub(e.first) > t.window && !e.lockedUntil.After(now)) {
		e = &throttleEntry{first: now}
		t.entries[key] = e
	}
	e.failures++
	if over := e.failures - free; over > 0 {
		lock := t.base << min(over-1, 20)
		e.lockedUntil = now.Add(min(lock, t.max))
	}
}

// Succeed clears the username's count after a good login. The address keeps
// its count: one good account must not launder guesses at others.
func (t *Throttle) Succeed(username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, userKey(username))
}

// sweep forgets entries whose window has passed and that are not locked.
func (t *Throttle) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, e := range t.entries {
		if now.Sub(e.first) > t.window && !e.lockedUntil.After(now) {
			delete(t.entries, k)
		}
	}
}
