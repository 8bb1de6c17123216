package store_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// TestDeleteUser: a deleted account keeps its messages, which show as
// "deleted user", as do its memberships; it is disabled and every session
// of it revoked (what running servers close sockets on); its username stays
// taken; it cannot be deleted twice nor enabled again; its stored files are
// handed back for removal.
func TestDeleteUser(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		MustInsert(t, db, text(global.ID, alice.ID, kv, "a1", "from alice", base), text(global.ID, bob.ID, kv, "b1", "from bob", base))
		sess := chat.Session{UserID: alice.ID, TokenHash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: base, ExpiresAt: base.Add(time.Hour), IP: "192.0.2.7"}
		if err := db.CreateSession(ctx, &sess); err != nil {
			t.Fatal(err)
		}
		kept, expired := newFile(global.ID, alice.ID, kv, 5, base), newFile(global.ID, alice.ID, kv, 6, base)
		for _, f := range []chat.File{kept, expired, newFile(global.ID, bob.ID, kv, 7, base)} {
			if err := db.InsertFile(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExpireFile(ctx, expired.ID, base); err != nil {
			t.Fatal(err)
		}

		at := base.Add(time.Minute)
		files, err := db.DeleteUser(ctx, alice.ID, at)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || string(files[0].ID) != string(kept.ID) {
			t.Fatalf("DeleteUser returned %d files, want alice's one stored file", len(files))
		}
		got, err := db.UserByID(ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.DeletedAt.Equal(at) || !got.DisabledAt.Equal(at) || got.Email != "" || got.PasswordHash == alice.PasswordHash {
			t.Fatalf("deleted user = %+v", got)
		}
		if a, err := db.AccessBySessionID(ctx, sess.ID); err != nil || a.RevokedAt.IsZero() {
			t.Fatalf("alice's session after delete: %+v, %v", a, err)
		}
		revs, err := db.RevokedSince(ctx, at)
		if err != nil || !slices.Contains(revs, chat.Revocation{UserID: alice.ID}) || !slices.Contains(revs, chat.Revocation{SessionID: sess.ID, UserID: alice.ID}) {
			t.Fatalf("RevokedSince after delete = %v, %v", revs, err)
		}
		var names []string
		for _, m := range MustHistory(t, db, global.ID) {
			names = append(names, m.Username)
		}
		if !slices.Equal(names, []string{chat.DeletedUsername, "bob"}) {
			t.Fatalf("history shows %q", names)
		}
		if !slices.Contains(MustMembers(t, db, global.ID), chat.DeletedUsername+":member") {
			t.Fatalf("members = %q", MustMembers(t, db, global.ID))
		}
		// The name stays taken, and the account stays deleted.
		again := chat.User{Username: "Alice", PasswordHash: "h", Role: chat.RoleMember, CreatedAt: at}
		if err := db.CreateUser(ctx, &again, nil); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("registering a deleted user's name: %v", err)
		}
		if _, err := db.DeleteUser(ctx, alice.ID, at); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("deleting twice: %v", err)
		}
		if err := db.SetDisabled(ctx, alice.ID, time.Time{}); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("enabling a deleted user: %v", err)
		}
		if _, err := db.DeleteUser(ctx, 999999, at); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("deleting nobody: %v", err)
		}
		// A user disabled before being deleted still has every session revoked.
		carol := MustCreateUser(t, db, "carol")
		if err := db.SetDisabled(ctx, carol.ID, base); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteUser(ctx, carol.ID, at); err != nil {
			t.Fatal(err)
		}
		if u, _ := db.UserByID(ctx, carol.ID); !u.DisabledAt.Equal(base) || !u.DeletedAt.Equal(at) {
			t.Fatalf("carol = %+v", u)
		}
	})
}

// TestUsersAndSessions: the admin's list of users shows each with its last
// login (its newest kept session) and live sessions; LiveSessions leaves
// out revoked and expired ones.
func TestUsersAndSessions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		mk := func(hash string, created, expires time.Time) chat.Session {
			s := chat.Session{UserID: alice.ID, TokenHash: []byte(strings.Repeat(hash, 32)), CreatedAt: created, ExpiresAt: expires, UserAgent: "curl/8", IP: "192.0.2.1"}
			if err := db.CreateSession(ctx, &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		now := base.Add(time.Hour)
		old := mk("a", base, now.Add(-time.Minute)) // expired
		revoked := mk("b", base.Add(time.Minute), now.Add(time.Hour))
		live1 := mk("c", base.Add(2*time.Minute), now.Add(time.Hour))
		live2 := mk("d", base.Add(3*time.Minute), now.Add(time.Hour))
		if err := db.RevokeSession(ctx, revoked.ID, now); err != nil {
			t.Fatal(err)
		}
		got, err := db.LiveSessions(ctx, alice.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != live2.ID || got[1].ID != live1.ID || got[0].IP != "192.0.2.1" || got[0].UserAgent != "curl/8" {
			t.Fatalf("live sessions = %+v (old %d)", got, old.ID)
		}
		users, err := db.Users(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || users[0].ID != alice.ID || users[1].ID != bob.ID {
			t.Fatalf("users = %+v", users)
		}
		if users[0].LiveSessions != 2 || !users[0].LastLogin.Equal(live2.CreatedAt) || users[0].Username != "alice" {
			t.Fatalf("alice = %+v", users[0])
		}
		if users[1].LiveSessions != 0 || !users[1].LastLogin.IsZero() {
			t.Fatalf("bob = %+v", users[1])
		}
	})
}

// TestUnlocksAndAdminActions: unlocks are found from a time on, and
// forgotten before one; the audit trail keeps the newest lines, oldest
// first, cut to the column widths without breaking a character.
func TestUnlocksAndAdminActions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		for i, u := range []chat.Unlock{{Username: "alice", CreatedAt: base}, {Address: "192.0.2.9", CreatedAt: base.Add(time.Minute)},
			{Username: "bob", Address: "2001:db8::1", CreatedAt: base.Add(2 * time.Minute)}} {
			if id, err := db.InsertUnlock(ctx, u); err != nil || id <= 0 {
				t.Fatalf("unlock %d: %d, %v", i, id, err)
			}
		}
		got, err := db.UnlocksSince(ctx, base.Add(time.Minute))
		if err != nil || len(got) != 2 || got[0].Address != "192.0.2.9" || got[0].Username != "" || got[1].Username != "bob" ||
			!got[1].CreatedAt.Equal(base.Add(2*time.Minute)) {
			t.Fatalf("UnlocksSince = %+v, %v", got, err)
		}
		if err := db.DeleteUnlocksBefore(ctx, base.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.UnlocksSince(ctx, base); len(got) != 1 {
			t.Fatalf("after forgetting, %d unlocks", len(got))
		}

		long := strings.Repeat("é", 700) // 1400 bytes
		for i, cmd := range []string{"create-user", "set-role", "delete-user"} {
			a := chat.AdminAction{CreatedAt: base.Add(time.Duration(i) * time.Second), Actor: "root (sudo by ana)", Command: cmd, Target: "alice", Detail: long}
			if err := db.InsertAdminAction(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		acts, err := db.AdminActions(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(acts) != 2 || acts[0].Command != "set-role" || acts[1].Command != "delete-user" || acts[1].Actor != "root (sudo by ana)" ||
			!acts[1].CreatedAt.Equal(base.Add(2*time.Second)) || acts[1].Target != "alice" {
			t.Fatalf("AdminActions = %+v", acts)
		}
		if d := acts[1].Detail; len(d) > 1024 || !strings.HasPrefix(long, d) || len(d) < 1000 {
			t.Fatalf("detail kept %d bytes", len(d))
		}
	})
}

// TestBackupTo: an SQLite database is copied, while open, to a file that
// opens as the same database; MySQL is refused with a pointer to mysqldump.
func TestBackupTo(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice := MustCreateUser(t, db, "alice")
		MustInsert(t, db, text(global.ID, alice.ID, kv, "a1", "one", base), text(global.ID, alice.ID, kv, "a2", "two", base))
		out := filepath.Join(t.TempDir(), "copy.db")
		err := db.BackupTo(ctx, out)
		if opts.Driver == store.MySQL {
			if chat.ErrorCode(err) != chat.EInvalid || !strings.Contains(err.Error(), "mysqldump") {
				t.Fatalf("BackupTo on MySQL: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := db.BackupTo(ctx, out); err == nil {
			t.Fatal("BackupTo overwrote an existing file")
		}
		if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
			t.Fatalf("copy: %v", err)
		}
		copyDB := MustOpen(t, store.Options{Driver: store.SQLite, SQLitePath: out})
		if msgs := MustHistory(t, copyDB, global.ID); len(msgs) != 2 || string(msgs[1].Body) != "two" {
			t.Fatalf("the copy holds %d messages", len(msgs))
		}
	})
}
