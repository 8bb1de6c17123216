package auth

import (
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/ratelimit"
)

// registrationLimit limits the accounts one client address may create to
// perHour an hour, of which all perHour may come at once: so a household or
// an office can sign up together, and then one account every hour/perHour.
//
// It is a token bucket kept as one time per address (the generic cell rate
// algorithm): the time at which the address's bucket would be full again.
// On several nodes the bucket is the installation's, in Redis (shared);
// the one here serves while Redis does not answer.
type registrationLimit struct {
	perHour  int
	interval time.Duration // one account's worth of refill
	shared   *ratelimit.Shared
	limit    ratelimit.Limit
	mu       sync.Mutex
	full     map[string]time.Time
}

func newRegistrationLimit(perHour int, shared *ratelimit.Shared) *registrationLimit {
	return &registrationLimit{
		perHour: perHour, interval: time.Hour / time.Duration(perHour), full: make(map[string]time.Time),
		shared: shared, limit: ratelimit.Limit{Name: "registrations", PerSecond: float64(perHour) / 3600, Burst: perHour},
	}
}

// take reserves an account for addr, or returns how long until it may
// create one. shared says the account was reserved in the shared bucket,
// for giveBack.
func (r *registrationLimit) take(addr string, now time.Time) (wait time.Duration, shared bool) {
	if r.shared != nil {
		if ok, wait, answered := r.shared.Take(r.limit, addr); answered {
			if ok {
				return 0, true
			}
			return max(wait, time.Millisecond), true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	full := r.full[addr]
	if full.Before(now) {
		full = now
	}
	// The bucket holds perHour accounts: it may be up to perHour-1
	// intervals short of full and still give one.
	if short := full.Sub(now) - time.Duration(r.perHour-1)*r.interval; short > 0 {
		return short, false
	}
	r.full[addr] = full.Add(r.interval)
	return 0, false
}

// giveBack returns an account that take reserved and that was not created,
// to the bucket it came from.
func (r *registrationLimit) giveBack(addr string, now time.Time, shared bool) {
	if shared {
		r.shared.GiveBack(r.limit, addr)
		return
	}
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
