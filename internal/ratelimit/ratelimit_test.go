package ratelimit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/ratelimit"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucketBurstThenRate(t *testing.T) {
	b := ratelimit.NewBucket(10, 20)
	for i := range 20 {
		if ok, _ := b.Allow(t0); !ok {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	ok, wait := b.Allow(t0)
	if ok {
		t.Fatal("21st token at the same instant allowed")
	}
	if wait != 100*time.Millisecond {
		t.Fatalf("retry after %v, want 100ms at 10/s", wait)
	}
	if ok, _ := b.Allow(t0.Add(99 * time.Millisecond)); ok {
		t.Fatal("token allowed before it refilled")
	}
	if ok, _ := b.Allow(t0.Add(100 * time.Millisecond)); !ok {
		t.Fatal("token refused after it refilled")
	}
	// A long pause refills to the burst, not beyond.
	later := t0.Add(time.Hour)
	for i := range 20 {
		if ok, _ := b.Allow(later); !ok {
			t.Fatalf("after an hour, token %d refused", i+1)
		}
	}
	if ok, _ := b.Allow(later); ok {
		t.Fatal("bucket grew past its burst")
	}
}

func TestBucketClockGoingBack(t *testing.T) {
	b := ratelimit.NewBucket(1, 1)
	b.Allow(t0)
	if ok, _ := b.Allow(t0.Add(-time.Hour)); ok {
		t.Fatal("a clock step backwards refilled the bucket")
	}
}

func TestKeyedSeparatesKeysAndSweeps(t *testing.T) {
	k := ratelimit.NewKeyed(1, 2)
	k.Allow(1, t0)
	k.Allow(1, t0)
	if ok, _ := k.Allow(1, t0); ok {
		t.Fatal("key 1 over its burst allowed")
	}
	if ok, _ := k.Allow(2, t0); !ok {
		t.Fatal("key 2 limited by key 1's use")
	}
	k.Sweep(t0)
	if k.Len() != 2 {
		t.Fatalf("sweep dropped buckets still in use: %d left", k.Len())
	}
	k.Sweep(t0.Add(10 * time.Second))
	if k.Len() != 0 {
		t.Fatalf("sweep kept %d refilled buckets", k.Len())
	}
}

func TestKeyedConcurrent(t *testing.T) {
	k := ratelimit.NewKeyed(0.001, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if ok, _ := k.Allow(7, t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d allowed from a burst of 100 under concurrency", allowed)
	}
}

func TestConnsCap(t *testing.T) {
	c := ratelimit.NewConns[string](2)
	first, second := c.Acquire("a"), c.Acquire("a")
	if !first || !second {
		t.Fatal("connections under the cap refused")
	}
	if c.Acquire("a") {
		t.Fatal("third connection from one address allowed with a cap of 2")
	}
	if !c.Acquire("b") {
		t.Fatal("another address refused")
	}
	c.Release("a")
	if !c.Acquire("a") {
		t.Fatal("a released slot was not reusable")
	}
	u := ratelimit.NewConns[string](0)
	for range 1000 {
		if !u.Acquire("x") {
			t.Fatal("cap 0 must mean no cap")
		}
	}
}

// TestConnsPerUser: the same counter keyed by user id keeps each user's
// count apart, and a user who released every slot is forgotten.
func TestConnsPerUser(t *testing.T) {
	c := ratelimit.NewConns[int64](3)
	for range 3 {
		if !c.Acquire(7) {
			t.Fatal("user 7 refused under the cap")
		}
	}
	if c.Acquire(7) {
		t.Fatal("user 7 allowed a fourth connection with a cap of 3")
	}
	if !c.Acquire(8) {
		t.Fatal("user 8 refused because of user 7")
	}
	for range 3 {
		c.Release(7)
	}
	for range 3 {
		if !c.Acquire(7) {
			t.Fatal("user 7 refused after releasing every slot")
		}
	}
}

func TestConnsConcurrent(t *testing.T) {
	c := ratelimit.NewConns[int64](50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if c.Acquire(1) {
					mu.Lock()
					held++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if held != 50 {
		t.Fatalf("%d connections held under a cap of 50", held)
	}
}
