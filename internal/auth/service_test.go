package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
)

const (
	// password is the password of every user the tests create directly in
	// the store; its hash is computed once, since argon2id is slow under -race.
	password = "correct horse battery staple"
	tokenTTL = 24 * time.Hour
	home     = "192.0.2.1"
)

var passwordHash = sync.OnceValue(func() string { return auth.HashPassword(password) })

// fixture is a Service on a real SQLite store, with a clock the test moves.
type fixture struct {
	svc    *auth.Service
	store  *store.DB
	clock  *testclock.Clock
	secret []byte
	key    []byte // the token-signing key derived from secret
}

// MustService returns a Service with the given registration mode.
func MustService(tb testing.TB, registration string) *fixture {
	tb.Helper()
	return MustServiceWith(tb, func(o *auth.Options) { o.Registration = registration })
}

// MustServiceWith returns a Service with options that edit changes.
func MustServiceWith(tb testing.TB, edit func(o *auth.Options)) *fixture {
	tb.Helper()
	st, err := store.Open(context.Background(), store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(tb.TempDir(), "chat.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	f := &fixture{store: st, clock: newClock(), secret: make([]byte, keyring.SecretSize)}
	rand.Read(f.secret)
	f.key = keyring.SigningKey(f.secret)
	o := auth.Options{Store: st, SigningKey: f.key, TokenTTL: tokenTTL, Now: f.clock.Now}
	edit(&o)
	f.svc = auth.NewService(o)
	return f
}

// MustUser creates a user straight in the store, with the shared password.
func (f *fixture) MustUser(tb testing.TB, username string) chat.User {
	tb.Helper()
	u := chat.User{Username: username, PasswordHash: passwordHash(), Role: chat.RoleMember, CreatedAt: f.clock.Now()}
	if err := f.store.CreateUser(context.Background(), &u, nil); err != nil {
		tb.Fatal(err)
	}
	return u
}

// MustLogin logs a user in with the shared password.
func (f *fixture) MustLogin(tb testing.TB, username string) auth.Token {
	tb.Helper()
	tok, err := f.svc.Login(context.Background(), username, password, home, "test")
	if err != nil {
		tb.Fatalf("login %s: %v", username, err)
	}
	return tok
}

// MustAuthenticate fails the test unless token is accepted.
func (f *fixture) MustAuthenticate(tb testing.TB, token string) chat.Identity {
	tb.Helper()
	id, err := f.svc.Authenticate(context.Background(), token)
	if err != nil {
		tb.Fatalf("a good token was refused: %v", err)
	}
	return id
}

// wantCode fails the test unless err carries the chat error code want.
func wantCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := chat.ErrorCode(err); got != want {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const strong = "Tq7#vLp2!zR9wXk4"

	t.Run("open", func(t *testing.T) {
		t.Parallel()
		f := MustService(t, "open")
		u, err := f.svc.Register(ctx, auth.RegisterRequest{Username: "Alice", Password: strong, Email: " alice@example.com "})
		if err != nil {
			t.Fatal(err)
		}
		if u.ID <= 0 || u.Username != "Alice" || u.Email != "alice@example.com" || u.Role != chat.RoleMember {
			t.Fatalf("registered %+v", u)
		}
		if strings.Contains(u.PasswordHash, strong) || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			t.Fatalf("stored password hash %q", u.PasswordHash)
		}
		global, err := f.store.ChatByName(ctx, chat.GlobalChatName)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := f.store.IsMember(ctx, global.ID, u.ID); err != nil || !ok {
			t.Fatalf("a new user is not in the global chat: %v, %v", ok, err)
		}
		tok, err := f.svc.Login(ctx, "alice", strong, home, "test")
		if err != nil {
			t.Fatalf("cannot log in after registering: %v", err)
		}
		if tok.Identity.UserID != u.ID || tok.Identity.Username != "Alice" {
			t.Fatalf("login identity %+v", tok.Identity)
		}

		refused := []struct {
			name string
			req  auth.RegisterRequest
			code string
		}{
			{"taken in another case", auth.RegisterRequest{Username: "ALICE", Password: strong}, chat.EConflict},
			{"bad username", auth.RegisterRequest{Username: "a", Password: strong}, chat.EInvalid},
			{"mixed-script username", auth.RegisterRequest{Username: "p\u0430ypal", Password: strong}, chat.EInvalid},
			{"alice in full width", auth.RegisterRequest{Username: "ａｌｉｃｅ", Password: strong}, chat.EConflict},
			{"weak password", auth.RegisterRequest{Username: "bob", Password: "password2024!"}, chat.EInvalid},
			{"password with the username", auth.RegisterRequest{Username: "bob", Password: "bob-" + strong}, chat.EInvalid},
			{"not an email", auth.RegisterRequest{Username: "bob", Password: strong, Email: "bob at example"}, chat.EInvalid},
			{"email with a display name", auth.RegisterRequest{Username: "bob", Password: strong, Email: "Bob <bob@example.com>"}, chat.EInvalid},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.svc.Register(ctx, tt.req)
				wantCode(t, err, tt.code)
			})
		}
		if _, err := f.store.UserByUsername(ctx, "bob"); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("a refused registration left user bob behind: %v", err)
		}
	})

	t.Run("invite", func(t *testing.T) {
		t.Parallel()
		f := MustService(t, "invite")
		register := func(username, invite string) error {
			_, err := f.svc.Register(ctx, auth.RegisterRequest{Username: username, Password: strong, Invite: invite})
			return err
		}
		wantCode(t, register("nocode", ""), chat.EForbidden)
		wantCode(t, register("badcode", "not-an-invite"), chat.EInvalid)

		code, err := f.svc.CreateInvite(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if other, _ := f.svc.CreateInvite(ctx, time.Hour); other == code || len(code) < 20 {
			t.Fatalf("invite codes %q and %q are guessable", code, other)
		}
		if err := register("invited", " "+code+"\n"); err != nil {
			t.Fatalf("a valid invite was refused: %v", err)
		}
		wantCode(t, register("second", code), chat.EInvalid)

		late, err := f.svc.CreateInvite(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Hour)
		wantCode(t, register("late", late), chat.EInvalid)

		for _, name := range []string{"nocode", "badcode", "second", "late"} {
			if _, err := f.store.UserByUsername(ctx, name); chat.ErrorCode(err) != chat.ENotFound {
				t.Errorf("refused user %s exists: %v", name, err)
			}
		}
	})

	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		f := MustService(t, "closed")
		_, err := f.svc.Register(ctx, auth.RegisterRequest{Username: "alice", Password: strong})
		wantCode(t, err, chat.EForbidden)
		code, err := f.svc.CreateInvite(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.Register(ctx, auth.RegisterRequest{Username: "alice", Password: strong, Invite: code})
		wantCode(t, err, chat.EForbidden)
		if _, err := f.store.UserByUsername(ctx, "alice"); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("closed registration created a user: %v", err)
		}
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	alice := f.MustUser(t, "Alice")

	tok, err := f.svc.Login(ctx, "aLICE", password, home, "Firefox")
	if err != nil {
		t.Fatal(err)
	}
	want := chat.Identity{UserID: alice.ID, Username: "Alice", Role: chat.RoleMember, SessionID: tok.Identity.SessionID, ExpiresAt: f.clock.Now().Add(tokenTTL)}
	if tok.Identity != want || tok.Identity.SessionID <= 0 || tok.ExpiresIn != int(tokenTTL/time.Second) {
		t.Fatalf("login = %+v, expires in %d; want %+v", tok.Identity, tok.ExpiresIn, want)
	}
	if id := f.MustAuthenticate(t, tok.AccessToken); id != want {
		t.Fatalf("Authenticate = %+v, want %+v", id, want)
	}
	sess, err := f.store.SessionByID(ctx, tok.Identity.SessionID)
	if err != nil || sess.UserAgent != "Firefox" || sess.IP != home {
		t.Fatalf("session = %+v, %v", sess, err)
	}
	if strings.Contains(tok.AccessToken, password) || strings.Contains(tok.AccessToken, passwordHash()) {
		t.Fatal("the token carries the password or its hash")
	}

	t.Run("wrong user and wrong password look the same", func(t *testing.T) {
		_, wrongUser := f.svc.Login(ctx, "nobody", password, "192.0.2.50", "test")
		_, wrongPassword := f.svc.Login(ctx, "Alice", password+"!", "192.0.2.51", "test")
		wantCode(t, wrongUser, chat.EUnauthorized)
		wantCode(t, wrongPassword, chat.EUnauthorized)
		if wrongUser.Error() != wrongPassword.Error() || chat.ErrorMessage(wrongUser) != chat.ErrorMessage(wrongPassword) {
			t.Fatalf("wrong user: %v; wrong password: %v", wrongUser, wrongPassword)
		}
	})
}

func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	f.MustUser(t, "bob")

	const guesser = "203.0.113.7"

	// Six failures; five with a password too long to be worth hashing.
	for range 5 {
		_, err := f.svc.Login(ctx, "alice", strings.Repeat("x", 2000), guesser, "test")
		wantCode(t, err, chat.EUnauthorized)
	}
	_, err := f.svc.Login(ctx, "alice", "wrong password", guesser, "test")
	wantCode(t, err, chat.EUnauthorized)

	// Now even the right password waits there, whatever the case of the name.
	for _, name := range []string{"alice", "ALICE"} {
		_, err := f.svc.Login(ctx, name, password, guesser, "test")
		wantCode(t, err, chat.ETooMany)
		var ce *chat.Error
		if !errors.As(err, &ce) || ce.RetryAfter != 30*time.Second || !strings.Contains(ce.Message, "30 seconds") {
			t.Fatalf("throttled login = %#v, want RetryAfter 30", err)
		}
	}
	// Bob is not locked out by Alice's guesser, and nor is Alice at home.
	f.MustLogin(t, "bob")
	f.MustLogin(t, "alice")

	f.clock.Advance(29 * time.Second)
	_, err = f.svc.Login(ctx, "alice", password, guesser, "test")
	var ce *chat.Error
	if !errors.As(err, &ce) || ce.Code != chat.ETooMany || ce.RetryAfter != time.Second {
		t.Fatalf("a second before the end: %v", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.Login(ctx, "alice", password, guesser, "test"); err != nil {
		t.Fatalf("the right password after the lock-out: %v", err)
	}
}

// forge signs claims with a method and key of the caller's choosing.
func forge(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("forge %s token: %v", method.Alg(), err)
	}
	return s
}

// handmade builds a token from a raw header and claims, signed with
// HMAC-SHA256 under key whatever the header says.
func handmade(tb testing.TB, header map[string]any, claims any, key []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// tokenClaims are the claims the service puts in its tokens.
type tokenClaims struct {
	Username string `json:"username"`
	jwt.RegisteredClaims
}

// MustClaims reads a token's claims without checking it.
func MustClaims(tb testing.TB, token string) tokenClaims {
	tb.Helper()
	var c tokenClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestAuthenticateRefusesForgeries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	alice := f.MustUser(t, "alice")
	bob := f.MustUser(t, "bob")
	tok := f.MustLogin(t, "alice")
	f.MustAuthenticate(t, tok.AccessToken)

	issued := MustClaims(t, tok.AccessToken)
	if issued.Issuer != "mapsim-chat" || issued.Subject != strconv.FormatInt(alice.ID, 10) || issued.ID == "" ||
		!issued.ExpiresAt.Equal(f.clock.Now().Add(tokenTTL)) {
		t.Fatalf("issued claims %+v", issued)
	}
	// with returns a copy of the real claims changed by edit.
	with := func(edit func(c *tokenClaims)) tokenClaims {
		c := issued
		edit(&c)
		return c
	}
	otherKey := make([]byte, 32)
	rand.Read(otherKey)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "not a token"},
		{"three dots of garbage", "a.b.c"},
		{"header only", strings.Split(tok.AccessToken, ".")[0]},
		{"signature stripped", strings.Join(strings.Split(tok.AccessToken, ".")[:2], ".") + "."},
		{"oversized", tok.AccessToken + strings.Repeat("A", 5000)},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, issued)},
		{"alg none, hand made", func() string {
			parts := strings.Split(handmade(t, map[string]any{"alg": "none", "typ": "JWT"}, issued, f.key), ".")
			return parts[0] + "." + parts[1] + "."
		}()},
		{"HS256 with another key", forge(t, jwt.SigningMethodHS256, otherKey, issued)},
		{"HS256 with an empty key", forge(t, jwt.SigningMethodHS256, []byte{}, issued)},
		{"HS256 with SECRET_KEY itself", forge(t, jwt.SigningMethodHS256, f.secret, issued)},
		{"HS256 with \"secret\"", forge(t, jwt.SigningMethodHS256, []byte("secret"), issued)},
		{"HS256 with \"changeme\"", forge(t, jwt.SigningMethodHS256, []byte("changeme"), issued)},
		{"HS256 with jwt.io's example key", forge(t, jwt.SigningMethodHS256, []byte("your-256-bit-secret"), issued)},
		{"HS256 with a published placeholder", forge(t, jwt.SigningMethodHS256, []byte("your-secret-key-change-me-in-production"), issued)},
		{"HS512 with the right key", forge(t, jwt.SigningMethodHS512, f.key, issued)},
		{"HS384 with the right key", forge(t, jwt.SigningMethodHS384, f.key, issued)},
		{"ES256", forge(t, jwt.SigningMethodES256, ecKey, issued)},
		{"RS256 header over an HMAC of the right key", handmade(t, map[string]any{"alg": "RS256", "typ": "JWT"}, issued, f.key)},
		{"lower-case hs256 header", handmade(t, map[string]any{"alg": "hs256", "typ": "JWT"}, issued, f.key)},
		{"other user's id in sub", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) {
			c.Subject = strconv.FormatInt(bob.ID, 10)
		}))},
		{"no sub", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.Subject = "" }))},
		{"unknown session", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.ID = "no-such-session" }))},
		{"no jti", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.ID = "" }))},
		{"other issuer", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.Issuer = "someone-else" }))},
		{"no expiry", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.ExpiresAt = nil }))},
		{"already expired", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) {
			c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(-time.Second))
		}))},
		{"issued in the future", forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) {
			c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(time.Hour))
		}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.svc.Authenticate(ctx, tt.token)
			wantCode(t, err, chat.EUnauthorized)
			if id != (chat.Identity{}) {
				t.Fatalf("a refused token yielded identity %+v", id)
			}
		})
	}

	t.Run("a longer expiry in the token does not outlive the session", func(t *testing.T) {
		long := forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) {
			c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(365 * 24 * time.Hour))
		}))
		f.MustAuthenticate(t, long)
		c := testclock.New(f.clock.Now().Add(tokenTTL))
		late := auth.NewService(auth.Options{Store: f.store, SigningKey: f.key, TokenTTL: tokenTTL, Now: c.Now})
		_, err := late.Authenticate(ctx, long)
		wantCode(t, err, chat.EUnauthorized)
	})
	t.Run("the username claim is not trusted", func(t *testing.T) {
		renamed := forge(t, jwt.SigningMethodHS256, f.key, with(func(c *tokenClaims) { c.Username = "admin" }))
		if id := f.MustAuthenticate(t, renamed); id.Username != "alice" || id.UserID != alice.ID {
			t.Fatalf("identity %+v, want alice's", id)
		}
	})
}

func TestAuthenticateExpiry(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	tok := f.MustLogin(t, "alice")

	f.clock.Advance(tokenTTL - time.Second)
	f.MustAuthenticate(t, tok.AccessToken)
	f.clock.Advance(time.Second)
	_, err := f.svc.Authenticate(context.Background(), tok.AccessToken)
	wantCode(t, err, chat.EUnauthorized)
}

func TestLogoutRevokes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	laptop := f.MustLogin(t, "alice")
	phone := f.MustLogin(t, "alice")
	ticket, err := f.svc.IssueTicket(context.Background(), laptop.Identity)
	if err != nil {
		t.Fatal(err)
	}

	if err := f.svc.Logout(ctx, f.MustAuthenticate(t, laptop.AccessToken)); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(ctx, laptop.AccessToken)
	wantCode(t, err, chat.EUnauthorized)
	_, err = f.svc.RedeemTicket(ctx, ticket)
	wantCode(t, err, chat.EUnauthorized)
	// Logging out on the laptop leaves the phone logged in.
	f.MustAuthenticate(t, phone.AccessToken)
}

func TestSetPasswordLogsOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	alice := f.MustUser(t, "alice")
	tok := f.MustLogin(t, "alice")

	wantCode(t, f.svc.SetPassword(ctx, alice, "password2024!"), chat.EInvalid)
	f.MustAuthenticate(t, tok.AccessToken)

	const newPassword = "a whole new passphrase"
	if err := f.svc.SetPassword(ctx, alice, newPassword); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Authenticate(ctx, tok.AccessToken)
	wantCode(t, err, chat.EUnauthorized)
	if _, err := f.svc.Login(ctx, "alice", newPassword, home, "test"); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
}

func TestTickets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	tok := f.MustLogin(t, "alice")
	issue := func(t *testing.T) string {
		t.Helper()
		ticket, err := f.svc.IssueTicket(context.Background(), tok.Identity)
		if err != nil {
			t.Fatal(err)
		}
		return ticket
	}

	t.Run("single use", func(t *testing.T) {
		ticket := issue(t)
		id, err := f.svc.RedeemTicket(ctx, ticket)
		if err != nil || id != tok.Identity {
			t.Fatalf("RedeemTicket = %+v, %v; want %+v", id, err, tok.Identity)
		}
		_, err = f.svc.RedeemTicket(ctx, ticket)
		wantCode(t, err, chat.EUnauthorized)
	})
	t.Run("unguessable", func(t *testing.T) {
		a, b := issue(t), issue(t)
		if a == b || len(a) < 40 {
			t.Fatalf("tickets %q and %q", a, b)
		}
		if strings.Contains(a, tok.AccessToken) {
			t.Fatal("the ticket carries the access token")
		}
	})
	t.Run("unknown", func(t *testing.T) {
		for _, ticket := range []string{"", "garbage", tok.AccessToken} {
			_, err := f.svc.RedeemTicket(ctx, ticket)
			wantCode(t, err, chat.EUnauthorized)
		}
	})
	t.Run("used concurrently, still once", func(t *testing.T) {
		ticket := issue(t)
		var wg sync.WaitGroup
		var wins atomic.Int32
		for range 10 {
			wg.Go(func() {
				if _, err := f.svc.RedeemTicket(ctx, ticket); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("one ticket opened %d connections", n)
		}
	})
	t.Run("expires after 30 s", func(t *testing.T) {
		fresh, stale := issue(t), issue(t)
		f.clock.Advance(auth.TicketTTL - time.Millisecond)
		if _, err := f.svc.RedeemTicket(ctx, fresh); err != nil {
			t.Fatalf("a ticket was refused before 30 s: %v", err)
		}
		f.clock.Advance(time.Millisecond)
		_, err := f.svc.RedeemTicket(ctx, stale)
		wantCode(t, err, chat.EUnauthorized)
		if auth.TicketTTL != 30*time.Second {
			t.Fatalf("TicketTTL = %s, the API promises 30 s", auth.TicketTTL)
		}
	})
}

func TestServiceRunStops(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	cancel()
	<-done
}

// TestWatchRevocations: each revoked session and disabled user is handed
// on once, whichever process revoked it, within a look or two.
func TestWatchRevocations(t *testing.T) {
	f := MustService(t, "open")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handed := make(chan []chat.Revocation, 16)
	go f.svc.WatchRevocations(ctx, 5*time.Millisecond, slog.New(slog.DiscardHandler), func(rs []chat.Revocation) { handed <- rs })
	alice := f.MustUser(t, "alice")
	bob := f.MustUser(t, "bob")
	login := func(name string) chat.Identity {
		t.Helper()
		tok, err := f.svc.Login(ctx, name, password, home, "test")
		if err != nil {
			t.Fatal(err)
		}
		return tok.Identity
	}
	next := func() []chat.Revocation {
		t.Helper()
		select {
		case rs := <-handed:
			return rs
		case <-time.After(10 * time.Second):
			t.Fatal("no revocation handed on within 10 s")
			return nil
		}
	}
	first, second := login("alice"), login("alice")
	if err := f.svc.Logout(ctx, first); err != nil {
		t.Fatal(err)
	}
	if rs := next(); len(rs) != 1 || rs[0] != (chat.Revocation{SessionID: first.SessionID, UserID: alice.ID}) {
		t.Fatalf("handed %v", rs)
	}
	// Another process (here, the store directly) revokes the second; the
	// first is not handed on again.
	if err := f.store.RevokeSession(ctx, second.SessionID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if rs := next(); len(rs) != 1 || rs[0].SessionID != second.SessionID {
		t.Fatalf("handed %v", rs)
	}
	login("bob")
	if err := f.store.SetDisabled(ctx, bob.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	rs := next()
	var whole bool
	for _, r := range rs {
		if r.UserID != bob.ID {
			t.Fatalf("handed %v", rs)
		}
		whole = whole || r.SessionID == 0
	}
	if !whole {
		t.Fatalf("the disabled user is not handed on as a whole: %v", rs)
	}
}
