package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
)

// MustBrowserLogin logs a user in as the web client does.
func (f *fixture) MustBrowserLogin(tb testing.TB, username string) auth.BrowserLogin {
	tb.Helper()
	login, err := f.svc.LoginBrowser(context.Background(), username, password, home, "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
	if err != nil || login.Refresh == "" || login.AccessToken == "" {
		tb.Fatalf("browser login %s: %+v, %v", username, login, err)
	}
	return login
}

func TestBrowserSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	login := f.MustBrowserLogin(t, "alice")
	if login.ExpiresIn != int(auth.MaxBrowserTokenTTL/time.Second) || login.RefreshTTL != auth.DefaultRefreshTTL {
		t.Fatalf("browser access token lives %d s, refresh %v", login.ExpiresIn, login.RefreshTTL)
	}
	id := f.MustAuthenticate(t, login.AccessToken)

	// The access token is short-lived; the refresh token renews it, in
	// the same session, and the older access token stays good until it
	// expires (another tab holds it).
	f.clock.Advance(auth.MaxBrowserTokenTTL)
	if _, err := f.svc.Authenticate(ctx, login.AccessToken); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("an expired browser token: %v", err)
	}
	next, err := f.svc.Refresh(ctx, login.Refresh)
	if err != nil || next.Refresh == "" || next.Refresh == login.Refresh {
		t.Fatalf("refresh = %+v, %v", next, err)
	}
	if got := f.MustAuthenticate(t, next.AccessToken); got.SessionID != id.SessionID || got.UserID != id.UserID {
		t.Fatalf("refreshed identity %+v, want the session of %+v", got, id)
	}
	third, err := f.svc.Refresh(ctx, next.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	f.MustAuthenticate(t, next.AccessToken)

	// The first refresh token again, long after: the family is revoked,
	// every access token of it refused, and the newest refresh too.
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Refresh(ctx, login.Refresh); !errors.Is(err, auth.ErrRefreshReplayed) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := f.svc.Authenticate(ctx, third.AccessToken); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("an access token of a replayed family: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, third.Refresh); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("the newest refresh token of a replayed family: %v", err)
	}
}

func TestRefreshGraceAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustServiceWith(t, func(o *auth.Options) { o.RefreshTTL = time.Hour })
	f.MustUser(t, "alice")
	login := f.MustBrowserLogin(t, "alice")

	// Two tabs trade the same cookie at once: both get an access token,
	// the second no new cookie (the first answer set it).
	first, err := f.svc.Refresh(ctx, login.Refresh)
	if err != nil || first.Refresh == "" {
		t.Fatal(first, err)
	}
	f.clock.Advance(auth.RefreshGrace)
	second, err := f.svc.Refresh(ctx, login.Refresh)
	if err != nil || second.Refresh != "" || second.AccessToken == "" {
		t.Fatalf("the second tab within the grace: %+v, %v", second, err)
	}
	f.MustAuthenticate(t, second.AccessToken)

	// Unused for the refresh lifetime, the session expires.
	f.clock.Advance(time.Hour)
	if _, err := f.svc.Refresh(ctx, first.Refresh); chat.ErrorCode(err) != chat.EUnauthorized || errors.Is(err, auth.ErrRefreshReplayed) {
		t.Fatalf("refresh of an expired session: %v", err)
	}

	// Forged, empty and oversized tokens are refused without a lookup
	// that could match.
	for _, bad := range []string{"", "forged", string(make([]byte, 4096))} {
		if _, err := f.svc.Refresh(ctx, bad); chat.ErrorCode(err) != chat.EUnauthorized {
			t.Errorf("refresh %q: %v", bad[:min(len(bad), 10)], err)
		}
	}
}

// TestRefreshEndsWithSecret: a refresh token is checked by a hash keyed
// from SECRET_KEY, so a new secret (rotate-secret) ends every browser's
// session, as it ends every access token.
func TestRefreshEndsWithSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	login := f.MustBrowserLogin(t, "alice")
	other := make([]byte, 32)
	copy(other, f.key)
	other[0] ^= 1
	rotated := auth.NewService(auth.Options{Store: f.store, SigningKey: other, TokenTTL: tokenTTL, Now: f.clock.Now})
	if _, err := rotated.Refresh(ctx, login.Refresh); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("refresh under a new secret: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, login.Refresh); err != nil {
		t.Fatalf("the same token under the old secret: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	here := f.MustBrowserLogin(t, "alice")
	there := f.MustBrowserLogin(t, "alice")
	script := f.MustLogin(t, "alice")
	id := f.MustAuthenticate(t, here.AccessToken)
	const next = "Vq8#mLp3!zS9wYk5"

	// The new password is checked as at registration, before anything.
	if _, err := f.svc.ChangePassword(ctx, id, password, "short", home); chat.ErrorCode(err) != chat.EInvalid {
		t.Fatalf("a weak new password: %v", err)
	}
	// A wrong current password is refused, and counts as a failed login.
	const guesser = "203.0.113.9"
	for range 6 {
		if _, err := f.svc.ChangePassword(ctx, id, "wrong password", next, guesser); chat.ErrorCode(err) != chat.EForbidden {
			t.Fatalf("a wrong current password: %v", err)
		}
	}
	if _, err := f.svc.ChangePassword(ctx, id, password, next, guesser); chat.ErrorCode(err) != chat.ETooMany {
		t.Fatalf("after six wrong passwords: %v", err)
	}
	if _, err := f.svc.Login(ctx, "alice", password, guesser, "test"); chat.ErrorCode(err) != chat.ETooMany {
		t.Fatalf("login from the guesser's address after six wrong passwords: %v", err)
	}

	ended, err := f.svc.ChangePassword(ctx, id, password, next, home)
	if err != nil || len(ended) != 2 {
		t.Fatalf("change password = %v, %v; want two sessions ended", ended, err)
	}
	f.MustAuthenticate(t, here.AccessToken)
	if _, err := f.svc.Refresh(ctx, here.Refresh); err != nil {
		t.Fatalf("this session's refresh after the change: %v", err)
	}
	if _, err := f.svc.Authenticate(ctx, script.AccessToken); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("another session's token after the change: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, there.Refresh); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("another browser's refresh after the change: %v", err)
	}
	if _, err := f.svc.Login(ctx, "alice", password, home, "test"); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("the old password after the change: %v", err)
	}
	if _, err := f.svc.Login(ctx, "alice", next, home, "test"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

func TestSessionsList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	f.MustUser(t, "bob")
	a1 := f.MustBrowserLogin(t, "alice")
	f.clock.Advance(time.Minute)
	a2 := f.MustBrowserLogin(t, "alice")
	b1 := f.MustBrowserLogin(t, "bob")
	alice := f.MustAuthenticate(t, a2.AccessToken)
	bob := f.MustAuthenticate(t, b1.AccessToken)

	// A refresh is a use: the first session comes first again.
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Refresh(ctx, a1.Refresh); err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.Sessions(ctx, alice)
	if err != nil || len(list) != 2 || list[0].ID != a1.Identity.SessionID || list[1].ID != alice.SessionID {
		t.Fatalf("sessions = %+v, %v", list, err)
	}
	if err := f.svc.EndSession(ctx, bob, alice.SessionID); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("bob ending alice's session: %v", err)
	}
	ended, err := f.svc.EndOtherSessions(ctx, alice)
	if err != nil || len(ended) != 1 || ended[0] != a1.Identity.SessionID {
		t.Fatalf("end others = %v, %v", ended, err)
	}
	if _, err := f.svc.Refresh(ctx, a1.Refresh); chat.ErrorCode(err) != chat.EUnauthorized {
		t.Fatalf("refresh of an ended session: %v", err)
	}
	f.MustAuthenticate(t, a2.AccessToken)
	f.MustAuthenticate(t, b1.AccessToken)

	// Using a session records it, every few minutes rather than on every
	// request.
	f.clock.Advance(6 * time.Minute)
	f.MustAuthenticate(t, a2.AccessToken)
	list, err = f.svc.Sessions(ctx, alice)
	if err != nil || len(list) != 1 || !list[0].LastUsedAt.Equal(f.clock.Now()) {
		t.Fatalf("after a use: %+v, %v; want last used %v", list, err, f.clock.Now())
	}
	used := f.clock.Now()
	f.clock.Advance(time.Minute)
	f.MustAuthenticate(t, a2.AccessToken)
	if list, _ := f.svc.Sessions(ctx, alice); !list[0].LastUsedAt.Equal(used) {
		t.Fatalf("a use a minute later was recorded: %v", list[0].LastUsedAt)
	}
}
