package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

func TestCreateUserJoinsGlobal(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)

		u := chat.User{Username: "Alice", Email: "alice@example.com", PasswordHash: "$argon2id$x", Role: chat.RoleAdmin, CreatedAt: base}
		if err := db.CreateUser(ctx, &u, nil); err != nil {
			t.Fatal(err)
		}
		if u.ID <= 0 {
			t.Fatalf("CreateUser set id %d", u.ID)
		}
		got, err := db.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != u.Username || got.Email != u.Email || got.PasswordHash != u.PasswordHash || got.Role != u.Role ||
			!got.CreatedAt.Equal(base) || !got.DisabledAt.IsZero() {
			t.Fatalf("stored user = %+v, want %+v", got, u)
		}
		if ok, err := db.IsMember(ctx, global.ID, u.ID); err != nil || !ok {
			t.Fatalf("new user is not a member of the global chat: %v, %v", ok, err)
		}
		if ids, err := db.UserChatIDs(ctx, u.ID); err != nil || !slices.Equal(ids, []int64{global.ID}) {
			t.Fatalf("UserChatIDs = %v, %v; want [%d]", ids, err, global.ID)
		}

		// No email is stored as none, and two users without one do not clash.
		for _, name := range []string{"noemail1", "noemail2"} {
			u := chat.User{Username: name, PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base}
			if err := db.CreateUser(ctx, &u, nil); err != nil {
				t.Fatalf("user %s without email: %v", name, err)
			}
			if got, err := db.UserByID(ctx, u.ID); err != nil || got.Email != "" {
				t.Fatalf("user without email = %+v, %v", got, err)
			}
		}
	})
}

func TestCreateUserConflicts(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		MustCreateUser(t, db, "alice") // email alice@example.com

		tests := []struct {
			name     string
			username string
			email    string
		}{
			{"same username", "alice", "other1@example.com"},
			{"username differing only in case", "ALICE", "other2@example.com"},
			{"username in mixed case", "aLiCe", ""},
			{"same email", "bob", "alice@example.com"},
			{"email differing only in case", "carol", "Alice@Example.COM"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				u := chat.User{Username: tt.username, Email: tt.email, PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base}
				err := db.CreateUser(ctx, &u, nil)
				wantCode(t, err, chat.EConflict)
				if u.ID != 0 {
					t.Errorf("a refused user got id %d", u.ID)
				}
				// Nothing half-written: the refused name does not exist
				// unless it is alice's own.
				if !strings.EqualFold(tt.username, "alice") {
					_, err := db.UserByUsername(ctx, tt.username)
					wantCode(t, err, chat.ENotFound)
				}
			})
		}
	})
}

func TestCreateUserInvites(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		invite := func(t *testing.T, code string, expires time.Time) []byte {
			t.Helper()
			h := sha256.Sum256([]byte(code))
			if err := db.CreateInvite(ctx, chat.Invite{CodeHash: h[:], CreatedAt: base.Add(-time.Hour), ExpiresAt: expires}); err != nil {
				t.Fatal(err)
			}
			return h[:]
		}
		create := func(username string, code []byte) error {
			u := chat.User{Username: username, PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base}
			return db.CreateUser(ctx, &u, code)
		}

		t.Run("valid invite is consumed once", func(t *testing.T) {
			code := invite(t, "one-use", base.Add(time.Hour))
			if err := create("invited1", code); err != nil {
				t.Fatalf("valid invite refused: %v", err)
			}
			wantCode(t, create("invited2", code), chat.EInvalid)
			_, err := db.UserByUsername(ctx, "invited2")
			wantCode(t, err, chat.ENotFound)
		})
		t.Run("expired invite", func(t *testing.T) {
			wantCode(t, create("late1", invite(t, "expired", base.Add(-time.Millisecond))), chat.EInvalid)
			wantCode(t, create("late2", invite(t, "expires-now", base)), chat.EInvalid)
			for _, name := range []string{"late1", "late2"} {
				_, err := db.UserByUsername(ctx, name)
				wantCode(t, err, chat.ENotFound)
			}
		})
		t.Run("unknown invite", func(t *testing.T) {
			h := sha256.Sum256([]byte("never issued"))
			wantCode(t, create("stranger", h[:]), chat.EInvalid)
		})
		t.Run("refused user does not use up the invite", func(t *testing.T) {
			MustCreateUser(t, db, "taken")
			code := invite(t, "survives", base.Add(time.Hour))
			wantCode(t, create("TAKEN", code), chat.EConflict)
			if err := create("second-try", code); err != nil {
				t.Fatalf("invite was used up by a refused registration: %v", err)
			}
		})
	})
}

func TestUserByUsername(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "Alice")
		MustCreateUser(t, db, "alice2")

		tests := []struct {
			lookup string
			found  bool
		}{
			{"Alice", true},
			{"alice", true},
			{"ALICE", true},
			{"aLiCe", true},
			// Only case is ignored: another spelling is another name, so it
			// must not reach Alice's account (nor dodge her login throttle).
			{"alice ", false},
			{" alice", false},
			{"alíce", false},
			{"àlice", false},
			{"ali", false},
			{"alice%", false},
			{"", false},
		}
		for _, tt := range tests {
			t.Run(tt.lookup, func(t *testing.T) {
				u, err := db.UserByUsername(ctx, tt.lookup)
				if !tt.found {
					wantCode(t, err, chat.ENotFound)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if u.ID != alice.ID || u.Username != "Alice" {
					t.Fatalf("found %+v, want Alice as she spelled it (id %d)", u, alice.ID)
				}
			})
		}
	})
}

func TestSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		hash := sha256.Sum256([]byte("jti-1"))
		sess := chat.Session{UserID: alice.ID, TokenHash: hash[:], CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour),
			UserAgent: "curl/8.5", IP: "2001:db8::1"}
		if err := db.CreateSession(ctx, &sess); err != nil {
			t.Fatal(err)
		}
		if sess.ID <= 0 {
			t.Fatalf("CreateSession set id %d", sess.ID)
		}
		same := func(t *testing.T, got chat.Session) {
			t.Helper()
			if got.ID != sess.ID || got.UserID != alice.ID || !bytes.Equal(got.TokenHash, hash[:]) || !got.CreatedAt.Equal(sess.CreatedAt) ||
				!got.ExpiresAt.Equal(sess.ExpiresAt) || got.UserAgent != sess.UserAgent || got.IP != sess.IP || !got.RevokedAt.IsZero() {
				t.Fatalf("session = %+v, want %+v", got, sess)
			}
		}
		t.Run("by hash", func(t *testing.T) {
			got, err := db.SessionByTokenHash(ctx, hash[:])
			if err != nil {
				t.Fatal(err)
			}
			same(t, got)
		})
		t.Run("by id", func(t *testing.T) {
			got, err := db.SessionByID(ctx, sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got)
		})
		t.Run("access: session with its user, by hash and by id", func(t *testing.T) {
			want := chat.Access{SessionID: sess.ID, UserID: alice.ID, Username: "alice", Role: alice.Role, ExpiresAt: sess.ExpiresAt, LastUsedAt: sess.CreatedAt}
			for _, lookup := range []func() (chat.Access, error){
				func() (chat.Access, error) { return db.AccessByTokenHash(ctx, hash[:]) },
				func() (chat.Access, error) { return db.AccessBySessionID(ctx, sess.ID) },
			} {
				got, err := lookup()
				if err != nil || got != want {
					t.Fatalf("access = %+v, %v; want %+v", got, err, want)
				}
			}
			other := sha256.Sum256([]byte("no such jti"))
			if _, err := db.AccessByTokenHash(ctx, other[:]); chat.ErrorCode(err) != chat.ENotFound {
				t.Fatalf("unknown hash: %v, want not found", err)
			}
			if _, err := db.AccessBySessionID(ctx, sess.ID+1000); chat.ErrorCode(err) != chat.ENotFound {
				t.Fatalf("unknown id: %v, want not found", err)
			}
		})
		t.Run("same token hash twice is refused", func(t *testing.T) {
			dup := chat.Session{UserID: alice.ID, TokenHash: hash[:], CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
			if err := db.CreateSession(ctx, &dup); err == nil {
				t.Fatal("two sessions share one token hash")
			}
		})
		t.Run("revoke", func(t *testing.T) {
			at := base.Add(time.Minute)
			if err := db.RevokeSession(ctx, sess.ID, at); err != nil {
				t.Fatal(err)
			}
			// A second revocation does not move the recorded time.
			if err := db.RevokeSession(ctx, sess.ID, at.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			got, err := db.SessionByTokenHash(ctx, hash[:])
			if err != nil || !got.RevokedAt.Equal(at) {
				t.Fatalf("revoked session = %+v, %v; want revoked at %v", got, err, at)
			}
			if a, err := db.AccessBySessionID(ctx, sess.ID); err != nil || !a.RevokedAt.Equal(at) {
				t.Fatalf("access to a revoked session = %+v, %v; want revoked at %v", a, err, at)
			}
		})
	})
}

func TestCreateSessionLongUserAgent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		tests := []struct {
			name, userAgent string
		}{
			{"ascii", strings.Repeat("a", 300)},
			// A cut at 255 bytes would split the two-byte é in half.
			{"multibyte at the cut", strings.Repeat("a", 254) + strings.Repeat("é", 10)},
			{"emoji", strings.Repeat("🙂", 100)},
			{"invalid utf-8", "Mozilla/5.0 \xff\xfe"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				hash := sha256.Sum256([]byte{byte(i)})
				sess := chat.Session{UserID: alice.ID, TokenHash: hash[:], CreatedAt: base, ExpiresAt: base.Add(time.Hour), UserAgent: tt.userAgent}
				if err := db.CreateSession(ctx, &sess); err != nil {
					t.Fatalf("login with this User-Agent would fail: %v", err)
				}
				got, err := db.SessionByID(ctx, sess.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.UserAgent) > 255 || !utf8.ValidString(got.UserAgent) || got.UserAgent == "" {
					t.Fatalf("stored User-Agent %q (%d bytes) is not a valid UTF-8 string of at most 255 bytes", got.UserAgent, len(got.UserAgent))
				}
				if want := tt.userAgent[:min(len(tt.userAgent), 200)]; utf8.ValidString(want) && !strings.HasPrefix(got.UserAgent, want) {
					t.Fatalf("stored User-Agent %q does not start with %q", got.UserAgent, want)
				}
			})
		}
	})
}

func TestDeleteExpiredSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		ids := map[string]int64{}
		for name, expires := range map[string]time.Time{
			"expired":       base.Add(-time.Millisecond),
			"expiring now":  base,
			"still running": base.Add(time.Millisecond),
		} {
			hash := sha256.Sum256([]byte(name))
			sess := chat.Session{UserID: alice.ID, TokenHash: hash[:], CreatedAt: base.Add(-time.Hour), ExpiresAt: expires}
			if err := db.CreateSession(ctx, &sess); err != nil {
				t.Fatal(err)
			}
			ids[name] = sess.ID
		}
		n, err := db.DeleteExpiredSessions(ctx, base)
		if err != nil || n != 1 {
			t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
		}
		_, err = db.SessionByID(ctx, ids["expired"])
		wantCode(t, err, chat.ENotFound)
		for _, name := range []string{"expiring now", "still running"} {
			if _, err := db.SessionByID(ctx, ids[name]); err != nil {
				t.Errorf("session %q was deleted: %v", name, err)
			}
		}
		if n, err := db.DeleteExpiredSessions(ctx, base); err != nil || n != 0 {
			t.Fatalf("second DeleteExpiredSessions = %d, %v; want 0", n, err)
		}
	})
}

func TestSetPasswordRevokesSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		bob := MustCreateUser(t, db, "bob")
		newSession := func(u chat.User, jti string) int64 {
			hash := sha256.Sum256([]byte(jti))
			sess := chat.Session{UserID: u.ID, TokenHash: hash[:], CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour)}
			if err := db.CreateSession(ctx, &sess); err != nil {
				t.Fatal(err)
			}
			return sess.ID
		}
		laptop, phone, old, bobs := newSession(alice, "laptop"), newSession(alice, "phone"), newSession(alice, "old"), newSession(bob, "bob")
		earlier := base.Add(time.Minute)
		if err := db.RevokeSession(ctx, old, earlier); err != nil {
			t.Fatal(err)
		}

		at := base.Add(time.Hour)
		if err := db.SetPassword(ctx, alice.ID, "$argon2id$new", at); err != nil {
			t.Fatal(err)
		}
		if u, err := db.UserByID(ctx, alice.ID); err != nil || u.PasswordHash != "$argon2id$new" {
			t.Fatalf("password hash after SetPassword = %q, %v", u.PasswordHash, err)
		}
		for id, want := range map[int64]time.Time{laptop: at, phone: at, old: earlier, bobs: {}} {
			s, err := db.SessionByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !s.RevokedAt.Equal(want) {
				t.Errorf("session %d revoked at %v, want %v", id, s.RevokedAt, want)
			}
		}
		wantCode(t, db.SetPassword(ctx, 99999, "x", at), chat.ENotFound)

		// Setting the hash already stored is still a password change: it
		// succeeds and still logs every session out.
		tablet := newSession(alice, "tablet")
		later := at.Add(time.Hour)
		if err := db.SetPassword(ctx, alice.ID, "$argon2id$new", later); err != nil {
			t.Fatalf("SetPassword with the stored hash: %v", err)
		}
		if s, err := db.SessionByID(ctx, tablet); err != nil || !s.RevokedAt.Equal(later) {
			t.Fatalf("session after SetPassword with the stored hash = %+v, %v", s, err)
		}
	})
}

func TestSearchUsers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		for _, name := range []string{"alice", "Alina", "ALBERT", "malice", "bob", "x_1", "xa1", "x%2", "xb2", "x!3", "xc3", "x\\4", "xd4"} {
			MustCreateUser(t, db, name)
		}
		alvin := MustCreateUser(t, db, "alvin")
		MustExec(t, MustRawDB(t, opts), `UPDATE users SET disabled_at = ? WHERE id = ?`, base.UnixMilli(), alvin.ID)

		tests := []struct {
			prefix string
			limit  int
			want   []string
		}{
			{"al", 10, []string{"ALBERT", "alice", "Alina"}},
			{"AL", 10, []string{"ALBERT", "alice", "Alina"}},
			{"aLi", 10, []string{"alice", "Alina"}},
			{"al", 2, []string{"ALBERT", "alice"}},
			{"alice", 10, []string{"alice"}},
			{"alicea", 10, nil},
			{"lice", 10, nil},             // the start only
			{"alv", 10, nil},              // disabled
			{"alí", 10, nil},              // only ASCII case is ignored, not accents
			{"al", 0, nil},                // nothing asked
			{"x_", 10, []string{"x_1"}},   // _ is not a wildcard
			{"x%", 10, []string{"x%2"}},   // nor is %
			{"x!", 10, []string{"x!3"}},   // the escape character is itself
			{"x\\", 10, []string{"x\\4"}}, // a backslash too
			{"X_", 10, []string{"x_1"}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d", tt.prefix, tt.limit), func(t *testing.T) {
				users, err := db.SearchUsers(ctx, tt.prefix, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, u := range users {
					got = append(got, u.Username)
					if u.ID == 0 || u.PasswordHash == "" {
						t.Fatalf("found user %+v is not filled in", u)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("SearchUsers(%q, %d) = %q, want %q", tt.prefix, tt.limit, got, tt.want)
				}
			})
		}
		if users, err := db.SearchUsers(ctx, "", 100); err != nil || len(users) != 13 {
			t.Fatalf("SearchUsers(\"\") = %d users, %v; want every active user (13)", len(users), err)
		}
	})
}

// TestRevokedSince: the sessions revoked and the users disabled at or after
// a time, which every server polls to close WebSockets; enabling a user
// again does not bring back their sessions.
func TestRevokedSince(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		session := func(u chat.User, n byte) chat.Session {
			s := chat.Session{UserID: u.ID, TokenHash: bytes.Repeat([]byte{n}, 32), CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour)}
			if err := db.CreateSession(ctx, &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		a1, a2, b1 := session(alice, 1), session(alice, 2), session(bob, 3)
		if err := db.RevokeSession(ctx, a1.ID, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.SetDisabled(ctx, bob.ID, base.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := db.RevokedSince(ctx, base.Add(time.Minute))
		want := []chat.Revocation{{SessionID: a1.ID, UserID: alice.ID}, {SessionID: b1.ID, UserID: bob.ID}, {UserID: bob.ID}}
		sortRevocations(got)
		sortRevocations(want)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("RevokedSince = %v, %v; want %v", got, err, want)
		}
		if got, err := db.RevokedSince(ctx, base.Add(2*time.Minute+time.Millisecond)); err != nil || len(got) != 0 {
			t.Fatalf("nothing revoked since: %v, %v", got, err)
		}
		if u, err := db.UserByID(ctx, bob.ID); err != nil || !u.DisabledAt.Equal(base.Add(2*time.Minute)) {
			t.Fatalf("bob %+v, %v", u, err)
		}
		if err := db.SetDisabled(ctx, bob.ID, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.UserByID(ctx, bob.ID); !u.DisabledAt.IsZero() {
			t.Fatalf("bob still disabled: %+v", u)
		}
		if a, err := db.AccessBySessionID(ctx, b1.ID); err != nil || a.RevokedAt.IsZero() {
			t.Fatalf("bob's session came back with the account: %+v, %v", a, err)
		}
		if a, err := db.AccessBySessionID(ctx, a2.ID); err != nil || !a.RevokedAt.IsZero() {
			t.Fatalf("alice's other session was touched: %+v, %v", a, err)
		}
		if err := db.SetDisabled(ctx, bob.ID+alice.ID+100, base); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("disable nobody: %v", err)
		}
	})
}

func sortRevocations(rs []chat.Revocation) {
	slices.SortFunc(rs, func(a, b chat.Revocation) int {
		if a.UserID != b.UserID {
			return int(a.UserID - b.UserID)
		}
		return int(a.SessionID - b.SessionID)
	})
}
