package store_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// TestUsernamesInEveryScript: names are unique, and found, by their
// chat.UsernameKey on both databases, so a full-width or Arabic-keyboard
// spelling of a name is that name, while MariaDB's accent-blind collation
// no longer makes "alíce" collide with "alice".
func TestUsernamesInEveryScript(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		ali := MustCreateUser(t, db, "علی")
		alice2 := chat.User{Username: "alíce", PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base} // another name, not alice
		if err := db.CreateUser(ctx, &alice2, nil); err != nil {
			t.Fatal(err)
		}
		natasha := MustCreateUser(t, db, "Наташа")
		MustCreateUser(t, db, "王伟")

		for _, name := range []string{"Ａlice", "ALICE", "علي", "عَلی", "НАТАША"} {
			u := chat.User{Username: name, PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base}
			wantCode(t, db.CreateUser(ctx, &u, nil), chat.EConflict)
		}
		found := map[string]int64{
			"Ａlice": alice.ID, "alice": alice.ID, "alíce": alice2.ID, "ALÍCE": alice2.ID,
			"علي": ali.ID, "علی": ali.ID, "наташа": natasha.ID,
		}
		for lookup, id := range found {
			u, err := db.UserByUsername(ctx, lookup)
			if err != nil || u.ID != id {
				t.Errorf("UserByUsername(%q) = %d, %v; want %d", lookup, u.ID, err, id)
			}
		}
		if u, _ := db.UserByID(ctx, ali.ID); u.Username != "علی" {
			t.Errorf("stored username %q, want it as registered", u.Username)
		}
		for _, tt := range []struct {
			prefix string
			want   []string
		}{{"Ａl", []string{"alice", "alíce"}}, {"عل", []string{"علی"}}, {"علي", []string{"علی"}}, {"王", []string{"王伟"}}, {"нат", []string{"Наташа"}}} {
			users, err := db.SearchUsers(ctx, tt.prefix, 10)
			var got []string
			for _, u := range users {
				got = append(got, u.Username)
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("SearchUsers(%q) = %q, %v; want %q", tt.prefix, got, err, tt.want)
			}
		}
		users, err := db.UsersByUsername(ctx, []string{"ALICE", "علي", "nobody"})
		if err != nil || len(users) != 2 {
			t.Fatalf("UsersByUsername = %+v, %v; want alice and علی", users, err)
		}
	})
}

// TestExistingUsernamesAfterMigration: accounts made before migration 0009
// get their key and log in by any case of their name, and a new account
// cannot take one of their names in another case.
func TestExistingUsernamesAfterMigration(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		old, err := store.OpenAtVersion(ctx, opts, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"Bob_Old", "x.y-z", "---"} {
			MustCreateOldUser(t, opts, name)
		}
		old.Close()
		db := MustOpen(t, opts)
		for _, lookup := range []string{"bob_old", "BOB_OLD", "Ｂob_Old", "x.y-z", "---"} {
			if _, err := db.UserByUsername(ctx, lookup); err != nil {
				t.Errorf("UserByUsername(%q) after the migration: %v", lookup, err)
			}
		}
		u := chat.User{Username: "bob_old", PasswordHash: "h", Role: chat.RoleMember, CreatedAt: base}
		wantCode(t, db.CreateUser(ctx, &u, nil), chat.EConflict)
	})
}

// MustCreateOldUser inserts a user, and joins it to the global chat, as a
// release before migration 0009 did (with no username key), into a database
// at an older version.
func MustCreateOldUser(tb testing.TB, opts store.Options, name string) chat.User {
	tb.Helper()
	raw := MustRawDB(tb, opts)
	res := MustExec(tb, raw, `INSERT INTO users (username, email, password_hash, role, created_at) VALUES (?, ?, 'h', 'member', ?)`,
		name, name+"@example.com", base.UnixMilli())
	id, err := res.LastInsertId()
	if err != nil {
		tb.Fatal(err)
	}
	MustExec(tb, raw, `INSERT INTO chat_members (chat_id, user_id, role, joined_at) SELECT id, ?, 'member', ? FROM chats WHERE kind = 'global'`, id, base.UnixMilli())
	return chat.User{ID: id, Username: name}
}

func TestProfile(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")

		if err := db.SetDisplayName(ctx, alice.ID, "Alice Liddell ✨"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.SetDisplayName(ctx, 999999, "x"), chat.ENotFound)
		if u, _ := db.UserByID(ctx, alice.ID); u.DisplayName != "Alice Liddell ✨" || !u.AvatarAt.IsZero() {
			t.Fatalf("user after SetDisplayName = %+v", u)
		}
		// Search finds her by display name too.
		if users, err := db.SearchUsers(ctx, "Alice L", 10); err != nil || len(users) != 1 || users[0].ID != alice.ID {
			t.Fatalf("SearchUsers by display name = %+v, %v", users, err)
		}

		_, err := db.Avatar(ctx, alice.ID)
		wantCode(t, err, chat.ENotFound)
		for i, img := range [][]byte{[]byte("first image"), []byte("second image")} {
			at := base.Add(time.Second * time.Duration(i))
			if err := db.SetAvatar(ctx, chat.Avatar{UserID: alice.ID, Image: img, MimeType: "image/png", UpdatedAt: at}); err != nil {
				t.Fatal(err)
			}
			a, err := db.Avatar(ctx, alice.ID)
			if err != nil || !bytes.Equal(a.Image, img) || a.MimeType != "image/png" || !a.UpdatedAt.Equal(at) {
				t.Fatalf("avatar #%d = %+v, %v", i, a, err)
			}
			if u, _ := db.UserByID(ctx, alice.ID); !u.AvatarAt.Equal(at) {
				t.Fatalf("AvatarAt = %v, want %v", u.AvatarAt, at)
			}
		}
		wantCode(t, db.SetAvatar(ctx, chat.Avatar{UserID: 999999, Image: []byte("x"), MimeType: "image/png", UpdatedAt: base}), chat.ENotFound)
		if err := db.DeleteAvatar(ctx, alice.ID); err != nil {
			t.Fatal(err)
		}
		_, err = db.Avatar(ctx, alice.ID)
		wantCode(t, err, chat.ENotFound)
		if u, _ := db.UserByID(ctx, alice.ID); !u.AvatarAt.IsZero() {
			t.Fatalf("AvatarAt after delete = %v", u.AvatarAt)
		}

		// Notification levels: per member, default all, members only.
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID, bob.ID)
		if sum, err := db.UserChat(ctx, alice.ID, group.ID); err != nil || sum.Notify != chat.NotifyAll {
			t.Fatalf("new member's notify = %q, %v", sum.Notify, err)
		}
		for _, level := range []string{chat.NotifyMentions, chat.NotifyMentions, chat.NotifyMuted} {
			if err := db.SetNotify(ctx, group.ID, alice.ID, level); err != nil {
				t.Fatalf("SetNotify(%s): %v", level, err)
			}
			if sum, _ := db.UserChat(ctx, alice.ID, group.ID); sum.Notify != level {
				t.Fatalf("notify = %q, want %q", sum.Notify, level)
			}
		}
		if sum, _ := db.UserChat(ctx, bob.ID, group.ID); sum.Notify != chat.NotifyAll {
			t.Fatalf("bob's notify changed with alice's: %q", sum.Notify)
		}
		carol := MustCreateUser(t, db, "carol")
		wantCode(t, db.SetNotify(ctx, group.ID, carol.ID, chat.NotifyMuted), chat.ENotFound)

		// A deleted account loses its display name and avatar.
		if err := db.SetAvatar(ctx, chat.Avatar{UserID: bob.ID, Image: []byte("b"), MimeType: "image/jpeg", UpdatedAt: base}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetDisplayName(ctx, bob.ID, "Bobby"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.DeleteUser(ctx, bob.ID, base); err != nil {
			t.Fatal(err)
		}
		_, err = db.Avatar(ctx, bob.ID)
		wantCode(t, err, chat.ENotFound)
		if u, _ := db.UserByID(ctx, bob.ID); u.DisplayName != "" || !u.AvatarAt.IsZero() {
			t.Fatalf("deleted user keeps %+v", u)
		}
	})
}
