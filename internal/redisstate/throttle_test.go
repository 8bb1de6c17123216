package redisstate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/redisstate"
)

// Updates from many nodes at once each see the others' (no lost update),
// reservations count until released or lapsed, and Unlock clears failures.
func TestThrottlesShareEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	nodes := []*redisstate.Throttles{redisstate.NewThrottles(rdb, "site:"), redisstate.NewThrottles(rdb, "site:")}
	now := time.Now()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			err := nodes[i%2].Update(ctx, "alice", "192.0.2.1", now, "", func(p, a, u *redisstate.ThrottleEntry) string {
				p.Failures++
				a.Failures++
				u.Failures++
				return ""
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	read := func(th *redisstate.Throttles, user, addr string, at time.Time, release string) (p, a, u redisstate.ThrottleEntry) {
		t.Helper()
		err := th.Update(ctx, user, addr, at, release, func(pp, aa, uu *redisstate.ThrottleEntry) string {
			p, a, u = *pp, *aa, *uu
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		return p, a, u
	}
	if p, a, u := read(nodes[0], "alice", "192.0.2.1", now, ""); p.Failures != 40 || a.Failures != 40 || u.Failures != 40 {
		t.Fatalf("after 40 failures from two nodes: pair %d, address %d, user %d", p.Failures, a.Failures, u.Failures)
	}
	// Another address: its own pair and address, the same username.
	if p, a, u := read(nodes[1], "alice", "192.0.2.2", now, ""); p.Failures != 0 || a.Failures != 0 || u.Failures != 40 {
		t.Fatalf("another address: pair %d, address %d, user %d", p.Failures, a.Failures, u.Failures)
	}

	// A reservation counts as pending on every node until released.
	nodes[0].Update(ctx, "bob", "192.0.2.3", now, "", func(_, _, _ *redisstate.ThrottleEntry) string { return "r1" })
	nodes[1].Update(ctx, "bob", "192.0.2.3", now, "", func(_, _, _ *redisstate.ThrottleEntry) string { return "r2" })
	if p, _, u := read(nodes[1], "bob", "192.0.2.3", now, ""); p.Pending != 2 || u.Pending != 2 {
		t.Fatalf("two reservations: pending %d and %d", p.Pending, u.Pending)
	}
	if p, _, _ := read(nodes[0], "bob", "192.0.2.3", now, "r1"); p.Pending != 1 {
		t.Fatalf("after a release: pending %d, want 1", p.Pending)
	}
	// One never released (its node died) lapses.
	if p, _, _ := read(nodes[0], "bob", "192.0.2.3", now.Add(2*time.Minute), ""); p.Pending != 0 {
		t.Fatalf("a lapsed reservation still pending: %d", p.Pending)
	}

	// Unlock of the username clears it at every address, and its pacing.
	nodes[0].Update(ctx, "alice", "192.0.2.2", now, "", func(p, _, _ *redisstate.ThrottleEntry) string { p.Failures = 3; return "" })
	if err := nodes[1].Unlock(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"192.0.2.1", "192.0.2.2"} {
		if p, a, u := read(nodes[0], "alice", addr, now, ""); p.Failures != 0 || u.Failures != 0 || a.Failures == 0 && addr == "192.0.2.1" {
			t.Fatalf("after unlocking alice at %s: pair %d, user %d, address %d (kept)", addr, p.Failures, u.Failures, a.Failures)
		}
	}
	// Unlock of an address clears it and every username's pair there.
	if err := nodes[1].Unlock(ctx, "", "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	nodes[0].Update(ctx, "bob", "192.0.2.3", now, "", func(p, a, _ *redisstate.ThrottleEntry) string { p.Failures, a.Failures = 9, 9; return "" })
	if err := nodes[1].Unlock(ctx, "", "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	if p, a, _ := read(nodes[0], "bob", "192.0.2.3", now, ""); p.Failures != 0 || a.Failures != 0 {
		t.Fatalf("after unlocking the address: pair %d, address %d", p.Failures, a.Failures)
	}
}
