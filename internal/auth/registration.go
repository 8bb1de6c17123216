package auth

import (
	"sync"
	"time"
)

// registrationLimit limits the accounts one client address may create to
// perHour an hour, of which all perHour may come at once: so a household or
// an office can sign up together, and then one account every hour/perHour.
//
// It is a token bucket kept as one time per address (the generic cell rate
// algorithm): the time at which the address's bucket would be full again.
type registrationLimit struct {
	perHour  int
	interval time.Duration // one account's worth of refill
	mu       sync.Mutex
	full     map[string]time.Time
}

func newRegistrationLimit(perHour int) *registrationLimit {
	return &registrationLimit{perHour: perHour, interval: time.Hour / time.Duration(perHour), full: make(map[string]time.Time)}
}

// take reserves an account for addr, or returns how long until it may
// create one.
func (r *registrationLimit) take(addr string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := r.full[addr]
	if full.Before(now) {
		full = now
	}
	// The bucket holds perHour accounts: it may be up to perHour-1
	// intervals short of full and still give one.
	if short := full.Sub(now) - time.Duration(r.perHour-1)*r.interval; short > 0 {
		return short
	}
	r.full[addr] = full.Add(r.interval)
	return 0
}

// giveBack returns an account that take reserved and that was not created.
func (r *registrationLimit) giveBack(addr string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if full, ok := r.full[addr]; ok {
		r.full[addr] = full.Add(-r.interval)
	}
}

// sweep forgets addresses whose bucket is full again: a new one is full too.
func (r *registrationLimit) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, full := range r.full {
		if !full.After(now) {
			delete(r.full, addr)
		}
	}
}
