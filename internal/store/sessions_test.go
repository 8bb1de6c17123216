package store_test

import (
	"context"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

func refreshHash(s string) []byte {
	h := sha256.Sum256([]byte("refresh:" + s))
	return h[:]
}

// MustRefreshSession makes a browser session for u with the first refresh
// token first.
func MustRefreshSession(tb testing.TB, db *store.DB, u chat.User, first string) chat.Session {
	tb.Helper()
	h := sha256.Sum256([]byte("session:" + first))
	sess := chat.Session{UserID: u.ID, TokenHash: h[:], CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), UserAgent: "Firefox", IP: "192.0.2.1"}
	if err := db.CreateRefreshSession(context.Background(), &sess, refreshHash(first)); err != nil {
		tb.Fatal(err)
	}
	return sess
}

func TestRefreshRotationAndReplay(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		sess := MustRefreshSession(t, db, alice, "r1")
		grace := 10 * time.Second
		trade := func(old, next string, at time.Time) (chat.Access, chat.RefreshOutcome, error) {
			return db.RefreshSession(ctx, chat.Refresh{TokenHash: refreshHash(old), NextHash: refreshHash(next), At: at, Grace: grace, ExpiresAt: at.Add(24 * time.Hour)})
		}

		at := base.Add(time.Minute)
		a, out, err := trade("r1", "r2", at)
		if err != nil || out != chat.RefreshRotated || a.SessionID != sess.ID || a.UserID != alice.ID || !a.ExpiresAt.Equal(at.Add(24*time.Hour)) {
			t.Fatalf("first trade = %+v, %v, %v", a, out, err)
		}
		// Another tab trading the same token moments later succeeds,
		// without a successor of its own.
		if _, out, err := trade("r1", "r2b", at.Add(grace)); err != nil || out != chat.RefreshGrace {
			t.Fatalf("trade within the grace = %v, %v", out, err)
		}
		if _, _, err := trade("r2b", "x", at.Add(grace)); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("the grace stored a successor: %v", err)
		}
		// Once the successor is spent too, the family has moved on: the
		// first token is a replay even within the grace.
		{
			other := MustRefreshSession(t, db, alice, "o1")
			if _, out, err := trade("o1", "o2", at); err != nil || out != chat.RefreshRotated {
				t.Fatalf("o1: %v, %v", out, err)
			}
			if _, out, err := trade("o2", "o3", at); err != nil || out != chat.RefreshRotated {
				t.Fatalf("o2: %v, %v", out, err)
			}
			a, out, err := trade("o1", "o4", at)
			if err != nil || out != chat.RefreshReplayed || a.SessionID != other.ID {
				t.Fatalf("o1 after o2 was spent = %v, %v; want a replay", out, err)
			}
			if _, out, _ := trade("o3", "o5", at); out != chat.RefreshEnded {
				t.Fatalf("the newest token of the replayed family: %v", out)
			}
		}
		at = at.Add(time.Hour)
		if _, out, err := trade("r2", "r3", at); err != nil || out != chat.RefreshRotated {
			t.Fatalf("second trade = %v, %v", out, err)
		}
		// r1 again, after the grace: the family is revoked, and the
		// newest token is refused with it.
		a, out, err = trade("r1", "r4", at.Add(time.Minute))
		if err != nil || out != chat.RefreshReplayed || a.RevokedAt.IsZero() {
			t.Fatalf("replay = %+v, %v, %v", a, out, err)
		}
		if _, out, err := trade("r3", "r5", at.Add(2*time.Minute)); err != nil || out != chat.RefreshEnded {
			t.Fatalf("trade in a revoked family = %v, %v", out, err)
		}
		revoked, err := db.RevokedSince(ctx, at)
		if err != nil || !slices.Contains(revoked, chat.Revocation{SessionID: sess.ID, UserID: alice.ID}) {
			t.Fatalf("the revoked family is not among the revocations: %v, %v", revoked, err)
		}
		if _, _, err := trade("never-issued", "x", at); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("unknown token: %v", err)
		}
	})
}

func TestRefreshEndedSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		bob := MustCreateUser(t, db, "bob")
		carol := MustCreateUser(t, db, "carol")
		expired := MustRefreshSession(t, db, alice, "expired")
		loggedOut := MustRefreshSession(t, db, alice, "logged-out")
		MustRefreshSession(t, db, bob, "disabled")
		MustRefreshSession(t, db, carol, "password")
		if err := db.RevokeSession(ctx, loggedOut.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := db.SetDisabled(ctx, bob.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := db.SetPassword(ctx, carol.ID, "$argon2id$new", base); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{"expired", "logged-out", "disabled", "password"} {
			at := base.Add(time.Minute)
			if tok == "expired" {
				at = expired.ExpiresAt
			}
			_, out, err := db.RefreshSession(ctx, chat.Refresh{TokenHash: refreshHash(tok), NextHash: refreshHash(tok + "2"), At: at, ExpiresAt: at.Add(time.Hour)})
			if err != nil || out != chat.RefreshEnded {
				t.Errorf("%s: %v, %v", tok, out, err)
			}
		}
		// A session deleted once expired takes its tokens with it.
		if _, err := db.DeleteExpiredSessions(ctx, expired.ExpiresAt.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		_, _, err := db.RefreshSession(ctx, chat.Refresh{TokenHash: refreshHash("expired"), NextHash: refreshHash("x"), At: base})
		if chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("token of a deleted session: %v", err)
		}
	})
}

func TestSpentRefreshTokensPruned(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		MustRefreshSession(t, db, alice, "r1")
		at := base.Add(time.Minute)
		if _, out, err := db.RefreshSession(ctx, chat.Refresh{TokenHash: refreshHash("r1"), NextHash: refreshHash("r2"), At: at, ExpiresAt: at.Add(time.Hour)}); out != chat.RefreshRotated || err != nil {
			t.Fatal(out, err)
		}
		if n, err := db.DeleteSpentRefreshTokens(ctx, at.Add(time.Millisecond)); n != 1 || err != nil {
			t.Fatalf("pruned %d, %v; want the one spent token", n, err)
		}
		if _, out, err := db.RefreshSession(ctx, chat.Refresh{TokenHash: refreshHash("r2"), NextHash: refreshHash("r3"), At: at, ExpiresAt: at.Add(time.Hour)}); out != chat.RefreshRotated || err != nil {
			t.Fatalf("the live token after pruning: %v, %v", out, err)
		}
	})
}

func TestEndSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		bob := MustCreateUser(t, db, "bob")
		a1 := MustRefreshSession(t, db, alice, "a1")
		a2 := MustRefreshSession(t, db, alice, "a2")
		a3 := MustRefreshSession(t, db, alice, "a3")
		b1 := MustRefreshSession(t, db, bob, "b1")
		at := base.Add(time.Minute)

		if err := db.TouchSession(ctx, a2.ID, at); err != nil {
			t.Fatal(err)
		}
		live, err := db.LiveSessions(ctx, alice.ID, at)
		if err != nil || len(live) != 3 {
			t.Fatalf("live sessions = %v, %v", live, err)
		}
		for _, s := range live {
			want := base
			if s.ID == a2.ID {
				want = at
			}
			if !s.LastUsedAt.Equal(want) || s.UserAgent != "Firefox" {
				t.Errorf("session %d last used %v, want %v (%+v)", s.ID, s.LastUsedAt, want, s)
			}
		}

		// Alice cannot end Bob's session: it is answered as missing.
		if err := db.RevokeUserSession(ctx, alice.ID, b1.ID, at); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("ending another user's session: %v", err)
		}
		if err := db.RevokeUserSession(ctx, alice.ID, a3.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeUserSession(ctx, alice.ID, a3.ID, at); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("ending an ended session: %v", err)
		}
		ids, err := db.RevokeOtherSessions(ctx, alice.ID, a1.ID, at)
		if err != nil || !slices.Equal(ids, []int64{a2.ID}) {
			t.Fatalf("end others = %v, %v; want [%d]", ids, err, a2.ID)
		}
		if live, _ := db.LiveSessions(ctx, alice.ID, at); len(live) != 1 || live[0].ID != a1.ID {
			t.Fatalf("after ending the others: %v", live)
		}
		if live, _ := db.LiveSessions(ctx, bob.ID, at); len(live) != 1 {
			t.Fatalf("bob lost his session: %v", live)
		}

		// A new password keeps the session it was changed in.
		a4 := MustRefreshSession(t, db, alice, "a4")
		ids, err = db.ChangePassword(ctx, alice.ID, "$argon2id$new", a4.ID, at)
		if err != nil || !slices.Equal(ids, []int64{a1.ID}) {
			t.Fatalf("change password revoked %v, %v; want [%d]", ids, err, a1.ID)
		}
		if u, _ := db.UserByID(ctx, alice.ID); u.PasswordHash != "$argon2id$new" {
			t.Fatalf("hash not changed: %q", u.PasswordHash)
		}
		if live, _ := db.LiveSessions(ctx, alice.ID, at); len(live) != 1 || live[0].ID != a4.ID {
			t.Fatalf("after the change: %v", live)
		}
		if _, err := db.ChangePassword(ctx, 999999, "h", 0, at); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("change password of nobody: %v", err)
		}
	})
}
