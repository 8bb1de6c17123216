package auth_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
)

// TestRegisterPerAddress: open registration creates at most five accounts
// an hour from one address; refused requests cost nothing, and other
// addresses are not affected.
func TestRegisterPerAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const strong = "Tq7#vLp2!zR9wXk4"
	f := MustServiceWith(t, func(o *auth.Options) {
		o.Registration = "open"
		o.RegistrationsPerHour = 5
	})
	register := func(username, addr string) error {
		_, err := f.svc.Register(ctx, auth.RegisterRequest{Username: username, Password: strong, Addr: addr})
		return err
	}

	// Mistakes do not count.
	_, err := f.svc.Register(ctx, auth.RegisterRequest{Username: "weak", Password: "password123", Addr: guesser})
	wantCode(t, err, chat.EInvalid)
	if err := register("taken", "192.0.2.99"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, register("TAKEN", guesser), chat.EConflict)

	for i := range 5 {
		if err := register(fmt.Sprintf("user%d", i), guesser); err != nil {
			t.Fatalf("account %d: %v", i+1, err)
		}
	}
	err = register("user5", guesser)
	if wait := retryAfter(t, err); wait != 12*time.Minute || !strings.Contains(chat.ErrorMessage(err), "12 minutes") {
		t.Fatalf("the sixth account: %v, retry after %s; want 12 minutes", err, wait)
	}
	if err := register("elsewhere", "192.0.2.100"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Valid input is checked before the limit, so a mistake still gets
	// its own answer.
	_, err = f.svc.Register(ctx, auth.RegisterRequest{Username: "x", Password: strong, Addr: guesser})
	wantCode(t, err, chat.EInvalid)

	f.clock.Advance(12*time.Minute - time.Second)
	if wait := retryAfter(t, register("user5", guesser)); wait != time.Second {
		t.Fatalf("a second early: retry after %s", wait)
	}
	f.clock.Advance(time.Second)
	if err := register("user5", guesser); err != nil {
		t.Fatalf("after 12 minutes: %v", err)
	}
	retryAfter(t, register("user6", guesser))
	if _, err := f.store.UserByUsername(ctx, "user6"); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("a refused registration created its user: %v", err)
	}
}

// TestRegisterPerAddressInParallel: the limit holds for requests in flight
// together.
func TestRegisterPerAddressInParallel(t *testing.T) {
	t.Parallel()
	f := MustServiceWith(t, func(o *auth.Options) {
		o.Registration = "open"
		o.RegistrationsPerHour = 5
	})
	var created, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := f.svc.Register(context.Background(), auth.RegisterRequest{Username: fmt.Sprintf("user%d", i), Password: "Tq7#vLp2!zR9wXk4", Addr: guesser})
			switch chat.ErrorCode(err) {
			case "":
				created.Add(1)
			case chat.ETooMany:
				refused.Add(1)
			default:
				t.Errorf("user%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 5 || refused.Load() != 15 {
		t.Fatalf("%d created, %d refused; want 5 and 15", created.Load(), refused.Load())
	}
}

// TestRegisterWithInviteIsNotLimited: each invite code is already an
// administrator's leave, so invited sign-ups do not count.
func TestRegisterWithInviteIsNotLimited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustServiceWith(t, func(o *auth.Options) {
		o.Registration = "invite"
		o.RegistrationsPerHour = 1
	})
	for i := range 2 {
		code, err := f.svc.CreateInvite(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Register(ctx, auth.RegisterRequest{Username: fmt.Sprintf("invited%d", i), Password: "Tq7#vLp2!zR9wXk4", Invite: code, Addr: guesser}); err != nil {
			t.Fatalf("invited user %d: %v", i, err)
		}
	}
}
