package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Store keeps token buckets where every node of an installation takes from
// them (redisstate.Buckets, in Redis).
type Store interface {
	// Take takes a token from the bucket name (perSecond tokens a second,
	// up to burst), or reports how long until there is one.
	Take(ctx context.Context, name string, perSecond float64, burst int) (bool, time.Duration, error)
	// GiveBack returns a token taken and not used.
	GiveBack(ctx context.Context, name string, perSecond float64, burst int) error
}

// Shared makes per-user and per-address budgets one budget across the
// nodes, by taking from a Store, and says when the store cannot be asked,
// so that the caller applies its own node's limiter instead. It never
// waits on the store for longer than its timeout, and after a failure it
// stops asking for a while (RetryEvery) rather than make every check wait
// the timeout: while the store is away each node limits on its own, one
// budget per node, and nobody is refused for the outage. It logs each
// change of state once, and counts the checks that fell back, per limit.
type Shared struct {
	store      Store
	timeout    time.Duration
	retryEvery time.Duration
	log        *slog.Logger

	up      atomic.Bool
	nextTry atomic.Int64 // UnixNano: when to ask the store again while down

	mu        sync.Mutex
	fallbacks map[string]*atomic.Int64
}

// SharedOptions configure Shared.
type SharedOptions struct {
	// Timeout bounds one check in the store (0: 50 ms).
	Timeout time.Duration
	// RetryEvery is how long the store is left alone after it failed
	// (0: 1 s); then one check tries it again.
	RetryEvery time.Duration
	Log        *slog.Logger
}

// NewShared returns budgets kept in store.
func NewShared(store Store, o SharedOptions) *Shared {
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Shared{store: store, timeout: o.Timeout, retryEvery: o.RetryEvery, log: o.Log, fallbacks: make(map[string]*atomic.Int64)}
	s.up.Store(true)
	return s
}

// Limit names a budget: Name is the family (messages, uploads,
// registrations), the label its fallbacks are counted under.
type Limit struct {
	Name      string
	PerSecond float64
	Burst     int
}

// Take takes a token for key (a user id, an address) from limit's shared
// bucket. answered is false when the store was not asked or did not answer
// in time: the caller then applies its own limiter, and allowed and wait
// mean nothing.
func (s *Shared) Take(limit Limit, key string) (allowed bool, wait time.Duration, answered bool) {
	if !s.ask(time.Now()) {
		s.fellBack(limit.Name)
		return false, 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	allowed, wait, err := s.store.Take(ctx, limit.Name+":"+key, limit.PerSecond, limit.Burst)
	cancel()
	if err != nil {
		s.failed(err)
		s.fellBack(limit.Name)
		return false, 0, false
	}
	s.answered()
	return allowed, wait, true
}

// GiveBack returns a token that Take took (answered) and that was not
// used. It reports false when the store did not take it back; the token
// then counts until the bucket refills, which errs on the strict side.
func (s *Shared) GiveBack(limit Limit, key string) bool {
	if !s.up.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	err := s.store.GiveBack(ctx, limit.Name+":"+key, limit.PerSecond, limit.Burst)
	cancel()
	if err != nil {
		s.failed(err)
		return false
	}
	return true
}

// ask reports whether to ask the store now: always while it is up; while
// it is down, once every RetryEvery (one check, whichever comes first).
func (s *Shared) ask(now time.Time) bool {
	if s.up.Load() {
		return true
	}
	next := s.nextTry.Load()
	if now.UnixNano() < next {
		return false
	}
	return s.nextTry.CompareAndSwap(next, now.Add(s.retryEvery).UnixNano())
}

func (s *Shared) failed(err error) {
	s.nextTry.Store(time.Now().Add(s.retryEvery).UnixNano())
	if s.up.CompareAndSwap(true, false) {
		s.log.Warn("rate limits: Redis did not answer; each node limits on its own until it does", "err", err)
	}
}

func (s *Shared) answered() {
	if s.up.CompareAndSwap(false, true) {
		s.log.Info("rate limits: Redis answers again; budgets are shared among the nodes")
	}
}

func (s *Shared) fellBack(name string) {
	s.mu.Lock()
	c := s.fallbacks[name]
	if c == nil {
		c = new(atomic.Int64)
		s.fallbacks[name] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

// Up reports whether the last check reached the store.
func (s *Shared) Up() bool { return s.up.Load() }

// Fallbacks returns how many checks of the named limit fell back to the
// node's own limiter.
func (s *Shared) Fallbacks(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.fallbacks[name]; c != nil {
		return c.Load()
	}
	return 0
}
