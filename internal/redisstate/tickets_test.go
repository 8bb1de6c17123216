package redisstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/redisstate"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
	"github.com/redis/go-redis/v9"
)

func mustClient(t *testing.T) *redis.Client {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestTicketsAreSingleUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	// Two nodes of one installation, and another installation on the
	// same Redis.
	a, b := redisstate.NewTickets(rdb, "site:"), redisstate.NewTickets(rdb, "site:")
	other := redisstate.NewTickets(rdb, "other:")
	if err := a.Put(ctx, "ticket-1", 7, 70, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := other.Take(ctx, "ticket-1"); ok || err != nil {
		t.Fatalf("another installation took the ticket: %v %v", ok, err)
	}
	session, ok, err := b.Take(ctx, "ticket-1")
	if err != nil || !ok || session != 70 {
		t.Fatalf("Take on the other node = %d %v %v, want 70 true", session, ok, err)
	}
	if _, ok, err := a.Take(ctx, "ticket-1"); ok || err != nil {
		t.Fatalf("a used ticket was taken again: %v %v", ok, err)
	}
	if _, ok, _ := a.Take(ctx, "never-issued"); ok {
		t.Fatal("an unknown ticket was taken")
	}
	// Redis's keys hold no usable ticket.
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if v, _ := rdb.Get(ctx, k).Result(); v == "ticket-1" || k == "site:ticket:ticket-1" {
			t.Fatalf("Redis holds the ticket in the clear: %s", k)
		}
	}
}

func TestTicketsExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	tickets := redisstate.NewTickets(rdb, "site:")
	if err := tickets.Put(ctx, "short", 1, 10, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Redis expires the key by itself; wait for that, not a sleep.
		if keys, err := rdb.Keys(ctx, "site:ticket:*").Result(); err == nil && len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ticket did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok, _ := tickets.Take(ctx, "short"); ok {
		t.Fatal("an expired ticket was taken")
	}
}

func TestTicketsPerUserPushOutTheOldest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tickets := redisstate.NewTickets(mustClient(t), "site:")
	tickets.PerUser = 2
	for _, k := range []string{"first", "second", "third"} {
		if err := tickets.Put(ctx, k, 5, 50, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := tickets.Put(ctx, "someone-else", 6, 60, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := tickets.Take(ctx, "first"); ok {
		t.Fatal("the oldest of three tickets, beyond the user's two, still opened")
	}
	for _, k := range []string{"second", "third", "someone-else"} {
		if _, ok, err := tickets.Take(ctx, k); !ok || err != nil {
			t.Fatalf("ticket %s: %v %v", k, ok, err)
		}
	}
}

func TestTicketsWithRedisAway(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	tickets := redisstate.NewTickets(rdb, "site:")
	srv.Kill()
	ctx := context.Background()
	if err := tickets.Put(ctx, "x", 1, 1, time.Minute); err == nil {
		t.Fatal("Put succeeded with Redis gone")
	}
	if _, ok, err := tickets.Take(ctx, "x"); ok || err == nil {
		t.Fatalf("Take with Redis gone: %v %v", ok, err)
	}
}
