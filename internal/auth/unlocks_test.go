package auth_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// TestWatchUnlocks: an unlock another process stores (the admin command;
// here the store directly) clears this service's throttle within a few
// looks, and each is applied once.
func TestWatchUnlocks(t *testing.T) {
	f := MustService(t, "open")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.svc.WatchUnlocks(ctx, f.store, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	f.MustUser(t, "alice")
	for range 6 {
		f.svc.Login(ctx, "alice", "wrong-password-1", home, "test")
	}
	if _, err := f.svc.Login(ctx, "alice", password, home, "test"); chat.ErrorCode(err) != chat.ETooMany {
		t.Fatalf("alice is not locked out: %v", err)
	}
	if _, err := f.store.InsertUnlock(ctx, chat.Unlock{Username: "Alice", CreatedAt: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.svc.Login(ctx, "alice", password, home, "test")
		if err == nil {
			break
		}
		if chat.ErrorCode(err) != chat.ETooMany || time.Now().After(deadline) {
			t.Fatalf("after the unlock: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLoginDeletedAccount: a deleted account's login, with what was its
// password, gets the answer an unknown name gets.
func TestLoginDeletedAccount(t *testing.T) {
	f := MustService(t, "open")
	ctx := context.Background()
	u := f.MustUser(t, "dee")
	if _, err := f.store.DeleteUser(ctx, u.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Login(ctx, "dee", password, home, "test")
	_, unknown := f.svc.Login(ctx, "nobody", password, "192.0.2.99", "test")
	if chat.ErrorCode(err) != chat.EUnauthorized || chat.ErrorMessage(err) != chat.ErrorMessage(unknown) {
		t.Fatalf("a deleted account's login: %v (an unknown name: %v)", err, unknown)
	}
}
