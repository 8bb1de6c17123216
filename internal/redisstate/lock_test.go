package redisstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/redisstate"
)

func TestLocksOneHolderAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	a, b := redisstate.NewLocks(rdb, "site:"), redisstate.NewLocks(rdb, "site:")
	unlock, ok := a.TryLock(ctx, "janitor", time.Minute)
	if !ok {
		t.Fatal("the first node did not get the lock")
	}
	if _, ok := b.TryLock(ctx, "janitor", time.Minute); ok {
		t.Fatal("a second node got a held lock")
	}
	if _, ok := redisstate.NewLocks(rdb, "other:").TryLock(ctx, "janitor", time.Minute); !ok {
		t.Fatal("another installation's lock of the same name was held")
	}
	unlock()
	unlockB, ok := b.TryLock(ctx, "janitor", time.Minute)
	if !ok {
		t.Fatal("the lock was not free after its release")
	}
	// A late release by the first holder must not free the second's lock.
	unlock()
	if _, ok := a.TryLock(ctx, "janitor", time.Minute); ok {
		t.Fatal("a stale release freed another holder's lock")
	}
	unlockB()
}

func TestLocksExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := mustClient(t)
	locks := redisstate.NewLocks(rdb, "site:")
	if _, ok := locks.TryLock(ctx, "janitor", 100*time.Millisecond); !ok {
		t.Fatal("no lock")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := locks.TryLock(ctx, "janitor", time.Minute); ok {
			return // the dead holder's lock ran out
		}
		if time.Now().After(deadline) {
			t.Fatal("a lock whose holder never released it did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
