package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
)

// tooLong is a password Login refuses without hashing it; it counts as a
// failure like any other wrong password.
var tooLong = strings.Repeat("x", 2000)

// retryAfter returns the wait a too_many error asks for, failing the test
// for any other error.
func retryAfter(tb testing.TB, err error) time.Duration {
	tb.Helper()
	var ce *chat.Error
	if !errors.As(err, &ce) || ce.Code != chat.ETooMany || ce.RetryAfter <= 0 {
		tb.Fatalf("got %v, want too_many with a retry-after", err)
	}
	return ce.RetryAfter
}

// TestLoginParallelGuesses: many logins for one account at once, wrong
// passwords with the right one among them. The throttle decides before any
// of them is verified, so only the checks that one-after-another guessing
// would get are verified, and the rest are told to wait.
func TestLoginParallelGuesses(t *testing.T) {
	t.Parallel()
	const guesses = 100
	tests := []struct {
		name string
		addr func(i int) string
		// checks is what the throttle lets through: the free failures and
		// the one whose failure locks (or paces) the account.
		checks int
		wait   time.Duration
	}{
		{"from one address", func(int) string { return guesser }, 6, 30 * time.Second},
		{"from many addresses", addr, 11, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := MustService(t, "open")
			f.MustUser(t, "alice")

			// Every verification is held until each login has either
			// reached its verification or returned without one, so that
			// all of them are in flight together.
			var verified atomic.Int32
			settled := make(chan struct{}, guesses)
			gate := make(chan struct{})
			auth.SetBeforeVerify(f.svc, func() {
				verified.Add(1)
				settled <- struct{}{}
				<-gate
			})
			errs := make([]error, guesses)
			var wg sync.WaitGroup
			for i := range guesses {
				pw := fmt.Sprintf("wrong guess %d", i)
				if i == guesses/2 {
					pw = password
				}
				wg.Go(func() {
					_, errs[i] = f.svc.Login(ctx, "alice", pw, tt.addr(i), "test")
					if c := chat.ErrorCode(errs[i]); c != "" && c != chat.EUnauthorized {
						settled <- struct{}{} // returned without verifying
					}
				})
			}
			for range guesses {
				<-settled
			}
			close(gate)
			wg.Wait()

			if n := int(verified.Load()); n != tt.checks {
				t.Fatalf("%d of %d parallel logins were verified, want %d", n, guesses, tt.checks)
			}
			var refused, wrong, right int
			for i, err := range errs {
				switch chat.ErrorCode(err) {
				case chat.ETooMany:
					if got := retryAfter(t, err); got != tt.wait {
						t.Errorf("login %d: retry after %s, want %s", i, got, tt.wait)
					}
					refused++
				case chat.EUnauthorized:
					wrong++
				case "":
					if i != guesses/2 {
						t.Fatalf("login %d with a wrong password succeeded", i)
					}
					right++
				default:
					t.Fatalf("login %d: %v", i, err)
				}
			}
			if refused != guesses-tt.checks || wrong+right != tt.checks {
				t.Fatalf("%d refused, %d wrong, %d right; want %d refused", refused, wrong, right, guesses-tt.checks)
			}
		})
	}
}

// TestLoginGuesserCannotLockOwnerOut: an attacker at one address guesses
// on and on while others guess from many addresses. The attacker's address
// stays locked out; the owner, at home, gets in within 5 s.
func TestLoginGuesserCannotLockOwnerOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")

	// A minute of guessing: the attacker tries every second, and a fresh
	// address tries whenever the username's pace allows.
	start := f.clock.Now()
	for i := 0; f.clock.Now().Sub(start) < time.Minute; i++ {
		pw := tooLong
		if i < 10 {
			pw = fmt.Sprintf("wrong guess %d", i)
		}
		_, err := f.svc.Login(ctx, "alice", pw, guesser, "test")
		if c := chat.ErrorCode(err); c != chat.EUnauthorized && c != chat.ETooMany {
			t.Fatalf("attacker: %v", err)
		}
		_, err = f.svc.Login(ctx, "alice", tooLong, addr(i%250), "test")
		if chat.ErrorCode(err) != chat.ETooMany {
			wantCode(t, err, chat.EUnauthorized)
		}
		f.clock.Advance(time.Second)
	}

	var waited time.Duration
	for {
		_, err := f.svc.Login(ctx, "alice", password, home, "test")
		if err == nil {
			break
		}
		wait := retryAfter(t, err)
		if waited += wait; waited > 5*time.Second {
			t.Fatalf("the owner has waited %s, more than 5 s", waited)
		}
		f.clock.Advance(wait)
	}
	_, err := f.svc.Login(ctx, "alice", password, guesser, "test")
	if wait := retryAfter(t, err); wait < 30*time.Second {
		t.Fatalf("the attacker's address waits only %s", wait)
	}
}

// TestLoginPatientGuesser: a guesser who waits out each lock-out meets a
// longer one, up to 15 minutes; its failures are not forgotten meanwhile.
func TestLoginPatientGuesser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	var waits []time.Duration
	for len(waits) < 7 {
		_, err := f.svc.Login(ctx, "alice", tooLong, guesser, "test")
		if chat.ErrorCode(err) == chat.EUnauthorized {
			continue
		}
		wait := retryAfter(t, err)
		waits = append(waits, wait)
		f.clock.Advance(wait)
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("lock-outs %v, want %v", waits, want)
		}
	}
}
