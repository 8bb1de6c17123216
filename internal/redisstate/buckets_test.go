package redisstate_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/redisstate"
)

// Two nodes taking from one bucket at once get its burst between them,
// no more; a refused take says how long until the next token; a given-back
// token can be taken again; the key expires once the bucket is full.
func TestBucketsOneBudgetForEveryNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	nodes := []*redisstate.Buckets{redisstate.NewBuckets(rdb, "site:"), redisstate.NewBuckets(rdb, "site:")}
	const rate, burst = 0.01, 10 // one token per 100 s: none refills during the test
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ok, wait, err := nodes[i%2].Take(ctx, "messages:7", rate, burst)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				allowed.Add(1)
			} else if wait < 99*time.Second || wait > 100*time.Second {
				t.Errorf("retry after %v, want about 100 s at 0.01/s", wait)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != burst {
		t.Fatalf("40 takes from two nodes: %d allowed, want the burst of %d", n, burst)
	}
	// Another key, and another installation, have their own buckets.
	if ok, _, _ := nodes[0].Take(ctx, "messages:8", rate, burst); !ok {
		t.Fatal("another user's bucket was empty")
	}
	if ok, _, _ := redisstate.NewBuckets(rdb, "other:").Take(ctx, "messages:7", rate, burst); !ok {
		t.Fatal("another installation's bucket was empty")
	}
	if err := nodes[1].GiveBack(ctx, "messages:7", rate, burst); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := nodes[0].Take(ctx, "messages:7", rate, burst); !ok {
		t.Fatal("a token given back could not be taken")
	}
	if ok, _, _ := nodes[0].Take(ctx, "messages:7", rate, burst); ok {
		t.Fatal("a second token after one given back")
	}

	// A fast bucket refills at its rate, and its key lasts no longer than
	// it takes to refill.
	for range 3 {
		if ok, _, err := nodes[0].Take(ctx, "uploads:1", 20, 3); !ok || err != nil {
			t.Fatalf("burst token refused: %v", err)
		}
	}
	ok, wait, _ := nodes[1].Take(ctx, "uploads:1", 20, 3)
	if ok || wait <= 0 || wait > 50*time.Millisecond {
		t.Fatalf("over the burst: allowed %v, retry after %v (want ≤ 50 ms at 20/s)", ok, wait)
	}
	ttl, err := rdb.PTTL(ctx, "site:rate:uploads:1").Result()
	if err != nil || ttl <= 0 || ttl > 200*time.Millisecond {
		t.Fatalf("key's TTL %v (%v), want at most the 150 ms to refill", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, _, _ := nodes[1].Take(ctx, "uploads:1", 20, 3)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bucket never refilled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for rdb.Exists(ctx, "site:rate:uploads:1").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a full bucket's key did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
