// Package ratelimit holds the limits that keep one user or one address from
// crowding out everyone else: token buckets for message and frame rates, and
// a counter of concurrent connections per client address.
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket: it holds up to Burst tokens and gains Rate
// tokens per second. It is not safe for concurrent use; Keyed wraps it for
// that.
type Bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, burst int) Bucket {
	return Bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *Bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		if d := now.Sub(b.last).Seconds(); d > 0 {
			b.tokens = math.Min(b.burst, b.tokens+d*b.rate)
		}
	}
	if now.After(b.last) {
		b.last = now
	}
}

// Allow takes a token if there is one. When there is none it reports how
// long until there will be.
func (b *Bucket) Allow(now time.Time) (bool, time.Duration) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

// full reports whether the bucket has refilled completely, so that
// forgetting it changes nothing.
func (b *Bucket) full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.burst
}

// Keyed is one bucket per key (a user id), safe for concurrent use. Buckets
// that have refilled are forgotten by Sweep, so memory follows the number of
// recently active keys.
type Keyed struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[int64]*Bucket
}

// NewKeyed returns a Keyed limiter: rate tokens per second per key, bursts
// of burst.
func NewKeyed(rate float64, burst int) *Keyed {
	return &Keyed{rate: rate, burst: burst, buckets: make(map[int64]*Bucket)}
}

// Allow takes a token from key's bucket; see Bucket.Allow.
func (k *Keyed) Allow(key int64, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[key]
	if b == nil {
		nb := NewBucket(k.rate, k.burst)
		b = &nb
		k.buckets[key] = b
	}
	return b.Allow(now)
}

// Sweep forgets buckets that are full again.
func (k *Keyed) Sweep(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, b := range k.buckets {
		if b.full(now) {
			delete(k.buckets, key)
		}
	}
}

// Len is the number of buckets held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// Run sweeps every interval until ctx ends.
func (k *Keyed) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			k.Sweep(now)
		}
	}
}

// Conns counts concurrent connections per client address.
type Conns struct {
	limit int // 0: no cap

	mu    sync.Mutex
	count map[string]int
}

// NewConns returns a counter that allows limit connections per address
// (0: no cap).
func NewConns(limit int) *Conns { return &Conns{limit: limit, count: make(map[string]int)} }

// Acquire counts a new connection from addr, or reports false when addr is
// at its cap. Every true must be paired with one Release.
func (c *Conns) Acquire(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && c.count[addr] >= c.limit {
		return false
	}
	c.count[addr]++
	return true
}

// Release forgets one connection from addr.
func (c *Conns) Release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.count[addr]; n <= 1 {
		delete(c.count, addr)
	} else {
		c.count[addr] = n - 1
	}
}

// Limit is the cap per address (0: none).
func (c *Conns) Limit() int { return c.limit }
