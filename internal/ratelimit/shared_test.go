package ratelimit_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/redisstate"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
	"github.com/redis/go-redis/v9"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newShared is one node's shared limits on srv, failing after 300 ms: the
// production 50 ms is too short for a test machine that other work loads,
// where a dial may take longer and a check would fall back by accident.
func newShared(t testing.TB, srv *redistest.Server, log *slog.Logger) *ratelimit.Shared {
	const timeout = 300 * time.Millisecond
	rdb := redisstate.FastClient(redis.NewClient(&redis.Options{Addr: srv.Addr()}), timeout)
	t.Cleanup(func() { rdb.Close() })
	return ratelimit.NewShared(redisstate.NewBuckets(rdb, "site:"), ratelimit.SharedOptions{
		Timeout: timeout, RetryEvery: 50 * time.Millisecond, Log: log,
	})
}

// Two nodes' Keyed limiters share one budget per user; with Redis killed
// each limits on its own (never blocked, never unlimited), the fallbacks
// are counted and the outage logged once; with Redis back the budget is
// shared again.
func TestSharedKeyedFallsBackAndReturns(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	sa, sb := newShared(t, srv, log), newShared(t, srv, slog.New(slog.DiscardHandler))
	a, b := ratelimit.NewKeyed(0.01, 4), ratelimit.NewKeyed(0.01, 4)
	a.Share(sa, "messages")
	b.Share(sb, "messages")
	count := func(user int64) (allowed int) {
		for i := range 12 {
			k := a
			if i%2 == 1 {
				k = b
			}
			if ok, wait := k.Allow(user, time.Now()); ok {
				allowed++
			} else if wait < 90*time.Second {
				t.Fatalf("retry after %v, want about 100 s", wait)
			}
		}
		return allowed
	}
	if n := count(1); n != 4 {
		t.Fatalf("shared: %d of 12 allowed over two nodes, want the burst of 4", n)
	}

	srv.Kill()
	start := time.Now()
	if n := count(2); n != 8 {
		t.Fatalf("Redis away: %d of 12 allowed over two nodes, want 4 on each", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("12 checks with Redis away took %v", d)
	}
	if sa.Up() || sa.Fallbacks("messages") == 0 {
		t.Fatalf("Redis away: up %v, fallbacks %d", sa.Up(), sa.Fallbacks("messages"))
	}
	count(3)
	if n := strings.Count(logs.String(), "did not answer"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once:\n%s", n, logs.String())
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for !sa.Up() || !sb.Up() {
		if time.Now().After(deadline) {
			t.Fatal("the limits never went back to Redis")
		}
		a.Allow(99, time.Now())
		b.Allow(99, time.Now())
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(4); n != 4 {
		t.Fatalf("Redis back: %d of 12 allowed over two nodes, want the burst of 4", n)
	}
	if !strings.Contains(logs.String(), "answers again") {
		t.Fatalf("the return was not logged:\n%s", logs.String())
	}
}

// A Redis that accepts connections and never answers (stopped) costs a
// check the timeout at most, and later checks nothing until the retry.
func TestSharedHungRedisCostsTheTimeout(t *testing.T) {
	srv := redistest.Start(t)
	s := newShared(t, srv, nil)
	k := ratelimit.NewKeyed(1000, 1000)
	k.Share(s, "messages")
	k.Allow(1, time.Now()) // a pooled connection
	srv.Stop()
	defer srv.Continue()
	start := time.Now()
	for range 100 {
		if ok, _ := k.Allow(1, time.Now()); !ok {
			t.Fatal("refused with budget left on the node")
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("100 checks against a hung Redis took %v (the timeout is 300 ms, retried every 50 ms)", d)
	}
	if s.Up() {
		t.Fatal("a hung Redis counted as up")
	}
}
