package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// sealedFor is what testSealer writes before the plaintext: the row the
// body was sealed for, as the real sealer binds it through the AAD.
func sealedFor(chatID, userID int64, kind, clientID string) []byte {
	return fmt.Appendf(nil, "sealed for %d/%d/%s/%s:", chatID, userID, kind, clientID)
}

// testSealer "seals" by writing down the row and the plaintext, so that a
// test can read back both what the store sealed and for which row.
func testSealer(kv int64) chat.Sealer {
	return func(m *chat.NewMessage, plaintext []byte) {
		m.KeyVersion = kv
		m.Body = append(sealedFor(m.ChatID, m.UserID, m.Kind, m.ClientID), plaintext...)
	}
}

// MustOpenSystem checks that m is a system message sealed for its own row
// and returns the event its body records.
func MustOpenSystem(tb testing.TB, m chat.Message) chat.SystemEvent {
	tb.Helper()
	prefix := sealedFor(m.ChatID, m.UserID, m.Kind, m.ClientID)
	if m.Kind != chat.MessageSystem || !bytes.HasPrefix(m.Body, prefix) {
		tb.Fatalf("message %d (kind %s) is not a system message sealed for its row: %q", m.ID, m.Kind, m.Body)
	}
	var ev chat.SystemEvent
	if err := json.Unmarshal(m.Body[len(prefix):], &ev); err != nil {
		tb.Fatalf("system message %d: %v", m.ID, err)
	}
	return ev
}

// MustSystemEvents returns the events of every system message of a chat,
// oldest first.
func MustSystemEvents(tb testing.TB, db *store.DB, chatID int64) []chat.SystemEvent {
	tb.Helper()
	var out []chat.SystemEvent
	for _, m := range MustHistory(tb, db, chatID) {
		if m.Kind == chat.MessageSystem {
			out = append(out, MustOpenSystem(tb, m))
		}
	}
	return out
}

// MustCreateGroup creates a group whose first member is its creator.
func MustCreateGroup(tb testing.TB, db *store.DB, kv int64, title string, at time.Time, members ...int64) chat.Chat {
	tb.Helper()
	c := chat.Chat{Kind: chat.KindGroup, Title: title, CreatedAt: at}
	created, _, err := db.CreateChat(context.Background(), &c, members, testSealer(kv), fmt.Sprintf("create-%s-%d", title, at.UnixNano()))
	if err != nil || !created {
		tb.Fatalf("create group %q = %v, %v", title, created, err)
	}
	return c
}

// MustCreateDirect creates (or finds) the direct chat of two users.
func MustCreateDirect(tb testing.TB, db *store.DB, at time.Time, a, b int64) chat.Chat {
	tb.Helper()
	c := chat.Chat{Kind: chat.KindDirect, CreatedAt: at}
	if _, _, err := db.CreateChat(context.Background(), &c, []int64{a, b}, nil, ""); err != nil {
		tb.Fatalf("create direct chat: %v", err)
	}
	return c
}

// MustMembers returns a chat's members as "username:role" in the store's order.
func MustMembers(tb testing.TB, db *store.DB, chatID int64) []string {
	tb.Helper()
	members, err := db.Members(context.Background(), chatID)
	if err != nil {
		tb.Fatal(err)
	}
	return memberNames(members)
}

func memberNames(members []chat.Member) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.Username + ":" + m.Role
	}
	return out
}

func sameEvents(a, b []chat.SystemEvent) bool {
	return slices.EqualFunc(a, b, func(x, y chat.SystemEvent) bool {
		return x.Event == y.Event && x.Actor == y.Actor && slices.Equal(x.Users, y.Users) && x.Title == y.Title
	})
}

func TestCreateDirectChat(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")

		first := chat.Chat{Kind: chat.KindDirect, E2EE: true, CreatedAt: base}
		created, change, err := db.CreateChat(ctx, &first, []int64{bob.ID, alice.ID}, nil, "")
		if err != nil || !created {
			t.Fatalf("CreateChat = %v, %v", created, err)
		}
		if first.ID == 0 || first.Name != chat.DirectChatName(alice.ID, bob.ID) || first.CreatedBy != bob.ID || !first.E2EE {
			t.Fatalf("created chat = %+v", first)
		}
		if len(change.Messages) != 0 || len(change.System) != 0 || !slices.Equal(memberNames(change.Added), []string{"bob:member", "alice:member"}) {
			t.Fatalf("change = %+v", change)
		}
		if got, err := db.ChatByID(ctx, first.ID); err != nil || got != first {
			t.Fatalf("stored chat = %+v, %v; want %+v", got, err, first)
		}
		if got := MustMembers(t, db, first.ID); !slices.Equal(got, []string{"alice:member", "bob:member"}) {
			t.Fatalf("members = %v", got)
		}
		if msgs := MustHistory(t, db, first.ID); len(msgs) != 0 {
			t.Fatalf("a direct chat starts with messages: %+v", msgs)
		}

		for _, order := range [][]int64{{alice.ID, bob.ID}, {bob.ID, alice.ID}} {
			again := chat.Chat{Kind: chat.KindDirect, CreatedAt: base.Add(time.Hour)}
			created, change, err := db.CreateChat(ctx, &again, order, nil, "")
			if err != nil || created || len(change.Added) != 0 {
				t.Fatalf("CreateChat(%v) again = %v, %+v, %v; want the existing chat", order, created, change, err)
			}
			if again != first {
				t.Fatalf("CreateChat(%v) again filled %+v, want %+v", order, again, first)
			}
		}

		tests := []struct {
			name    string
			kind    string
			members []int64
			code    string
		}{
			{"with oneself", chat.KindDirect, []int64{alice.ID, alice.ID}, chat.EInvalid},
			{"three people", chat.KindDirect, []int64{alice.ID, bob.ID, 99999}, chat.EInvalid},
			{"alone", chat.KindDirect, []int64{alice.ID}, chat.EInvalid},
			{"an unknown user", chat.KindDirect, []int64{alice.ID, 99999}, chat.ENotFound},
			{"a global chat", chat.KindGlobal, []int64{alice.ID, bob.ID}, chat.EInvalid},
			{"an unknown kind", "channel", []int64{alice.ID, bob.ID}, chat.EInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := chat.Chat{Kind: tt.kind, CreatedAt: base}
				created, _, err := db.CreateChat(ctx, &c, tt.members, nil, "")
				wantCode(t, err, tt.code)
				if created || c.ID != 0 {
					t.Fatalf("refused chat: created %v, %+v", created, c)
				}
			})
		}
		_, err = db.ChatByName(ctx, chat.DirectChatName(alice.ID, 99999))
		wantCode(t, err, chat.ENotFound)
	})
}

// Two users opening their direct chat at the same moment get the one chat.
func TestCreateDirectChatRace(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		carol, dave := MustCreateUser(t, db, "carol"), MustCreateUser(t, db, "dave")
		const n = 8
		var (
			wg      sync.WaitGroup
			ids     [n]int64
			created [n]bool
			errs    [n]error
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				members := []int64{carol.ID, dave.ID}
				if i%2 == 1 {
					members = []int64{dave.ID, carol.ID}
				}
				c := chat.Chat{Kind: chat.KindDirect, CreatedAt: base}
				created[i], _, errs[i] = db.CreateChat(ctx, &c, members, nil, "")
				ids[i] = c.ID
			}()
		}
		wg.Wait()
		winners := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("creator %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] || ids[i] == 0 {
				t.Fatalf("creators got chats %v", ids)
			}
			if created[i] {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("%d creators report creating the chat, want 1", winners)
		}
		if got := MustMembers(t, db, ids[0]); !slices.Equal(got, []string{"carol:member", "dave:member"}) {
			t.Fatalf("members = %v", got)
		}
	})
}

func TestCreateGroup(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")

		c := chat.Chat{Kind: chat.KindGroup, Title: "Ops « night »", CreatedAt: base}
		created, change, err := db.CreateChat(ctx, &c, []int64{bob.ID, carol.ID, alice.ID, carol.ID}, testSealer(kv), "create-1")
		if err != nil || !created {
			t.Fatalf("CreateChat = %v, %v", created, err)
		}
		if !regexp.MustCompile(`^group:[0-9a-f]{16}$`).MatchString(c.Name) || c.ID == 0 || c.CreatedBy != bob.ID || c.Kind != chat.KindGroup {
			t.Fatalf("created group = %+v", c)
		}
		if got, err := db.ChatByID(ctx, c.ID); err != nil || got != c {
			t.Fatalf("stored group = %+v, %v; want %+v", got, err, c)
		}
		if got := memberNames(change.Added); !slices.Equal(got, []string{"bob:owner", "carol:member", "alice:member"}) {
			t.Fatalf("added = %v", got)
		}
		for _, m := range change.Added {
			if !m.JoinedAt.Equal(base) || m.LastReadID != 0 {
				t.Fatalf("added member %+v", m)
			}
		}
		// Everyone joined at once: the order is by user id.
		if got := MustMembers(t, db, c.ID); !slices.Equal(got, []string{"alice:member", "bob:owner", "carol:member"}) {
			t.Fatalf("members = %v", got)
		}

		want := chat.SystemEvent{Event: chat.EventCreated, Actor: "bob", Users: []string{"carol", "alice"}, Title: "Ops « night »"}
		if len(change.Messages) != 1 || !sameEvents(change.System, []chat.SystemEvent{want}) {
			t.Fatalf("change = %+v", change)
		}
		ins := change.Messages[0]
		if !ins.Created || ins.ChatID != c.ID || !ins.CreatedAt.Equal(base) {
			t.Fatalf("inserted = %+v", ins)
		}
		history := MustHistory(t, db, c.ID)
		if len(history) != 1 {
			t.Fatalf("a new group holds %d messages, want 1", len(history))
		}
		m := history[0]
		if m.ID != ins.ID || m.UserID != bob.ID || m.Username != "bob" || m.ChatName != c.Name || m.ClientID != "create-1" ||
			m.KeyVersion != kv || !m.CreatedAt.Equal(base) {
			t.Fatalf("system message = %+v", m)
		}
		if got := MustOpenSystem(t, m); !sameEvents([]chat.SystemEvent{got}, []chat.SystemEvent{want}) {
			t.Fatalf("system message records %+v, want %+v", got, want)
		}

		t.Run("alone, and names differ", func(t *testing.T) {
			solo := chat.Chat{Kind: chat.KindGroup, Title: "Notes", CreatedAt: base}
			if _, _, err := db.CreateChat(ctx, &solo, []int64{alice.ID}, testSealer(kv), "create-2"); err != nil {
				t.Fatal(err)
			}
			if solo.Name == c.Name {
				t.Fatalf("two groups share the name %s", c.Name)
			}
			if got := MustSystemEvents(t, db, solo.ID); !sameEvents(got, []chat.SystemEvent{{Event: chat.EventCreated, Actor: "alice", Title: "Notes"}}) {
				t.Fatalf("events = %+v", got)
			}
			if got := MustMembers(t, db, solo.ID); !slices.Equal(got, []string{"alice:owner"}) {
				t.Fatalf("members = %v", got)
			}
		})

		refused := []struct {
			name     string
			title    string
			members  []int64
			clientID string
			code     string
		}{
			{"an unknown member", "Ghosts", []int64{alice.ID, 99999}, "create-3", chat.ENotFound},
			{"an unknown creator", "Ghosts", []int64{99999, alice.ID}, "create-4", chat.ENotFound},
			{"nobody", "Ghosts", nil, "create-5", chat.EInvalid},
			{"a title too long", strings.Repeat("é", 256), []int64{alice.ID}, "create-6", chat.EInvalid},
			{"a client id already used", "Again", []int64{bob.ID}, "create-1", chat.EConflict},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				before, err := db.UserChats(ctx, alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				g := chat.Chat{Kind: chat.KindGroup, Title: tt.title, CreatedAt: base}
				created, _, err := db.CreateChat(ctx, &g, tt.members, testSealer(kv), tt.clientID)
				wantCode(t, err, tt.code)
				if created || g.ID != 0 {
					t.Fatalf("refused group: created %v, %+v", created, g)
				}
				// Nothing half-written: no chat appeared.
				if after, err := db.UserChats(ctx, alice.ID); err != nil || len(after) != len(before) {
					t.Fatalf("alice is in %d chats (%v), was in %d", len(after), err, len(before))
				}
			})
		}
	})
}

func TestAddMembers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		carol, dave := MustCreateUser(t, db, "carol"), MustCreateUser(t, db, "dave")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID, bob.ID)
		at := base.Add(time.Hour)

		change, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{bob.ID, dave.ID, carol.ID, dave.ID}, at, testSealer(kv), "add-1")
		if err != nil {
			t.Fatal(err)
		}
		if got := memberNames(change.Added); !slices.Equal(got, []string{"dave:member", "carol:member"}) {
			t.Fatalf("added %v, want dave and carol (bob was in already)", got)
		}
		for _, m := range change.Added {
			if !m.JoinedAt.Equal(at) {
				t.Fatalf("added member %+v, want joined at %v", m, at)
			}
		}
		want := chat.SystemEvent{Event: chat.EventAdded, Actor: "alice", Users: []string{"dave", "carol"}}
		if len(change.Messages) != 1 || !change.Messages[0].Created || !sameEvents(change.System, []chat.SystemEvent{want}) {
			t.Fatalf("change = %+v", change)
		}
		history := MustHistory(t, db, group.ID)
		last := history[len(history)-1]
		if last.ID != change.Messages[0].ID || last.UserID != alice.ID || last.ClientID != "add-1" || !last.CreatedAt.Equal(at) {
			t.Fatalf("added message = %+v", last)
		}
		if got := MustOpenSystem(t, last); !sameEvents([]chat.SystemEvent{got}, []chat.SystemEvent{want}) {
			t.Fatalf("added message records %+v", got)
		}
		// The newcomers joined later: after the founders, by user id.
		if got := MustMembers(t, db, group.ID); !slices.Equal(got, []string{"alice:owner", "bob:member", "carol:member", "dave:member"}) {
			t.Fatalf("members = %v", got)
		}

		t.Run("everyone already in", func(t *testing.T) {
			change, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{bob.ID, carol.ID}, at, testSealer(kv), "add-2")
			if err != nil || len(change.Added) != 0 || len(change.Messages) != 0 || len(change.System) != 0 {
				t.Fatalf("AddMembers of members = %+v, %v; want no change", change, err)
			}
			if n := len(MustHistory(t, db, group.ID)); n != len(history) {
				t.Fatalf("a message was written for nobody added: %d messages, had %d", n, len(history))
			}
		})

		direct := MustCreateDirect(t, db, base, alice.ID, bob.ID)
		global := MustGlobal(t, db)
		refused := []struct {
			name   string
			chatID int64
			users  []int64
			code   string
		}{
			{"to a direct chat", direct.ID, []int64{carol.ID}, chat.EInvalid},
			{"to the global chat", global.ID, []int64{carol.ID}, chat.EInvalid},
			{"to no chat", 99999, []int64{carol.ID}, chat.ENotFound},
			{"an unknown user", group.ID, []int64{99999}, chat.ENotFound},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				before := MustMembers(t, db, tt.chatID)
				_, err := db.AddMembers(ctx, tt.chatID, alice.ID, tt.users, at, testSealer(kv), "add-refused")
				wantCode(t, err, tt.code)
				if after := MustMembers(t, db, tt.chatID); !slices.Equal(after, before) {
					t.Fatalf("members changed from %v to %v", before, after)
				}
			})
		}
	})
}

func TestRemoveMember(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		// alice has the smallest id but joins last; dave joins first with bob.
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		carol, dave := MustCreateUser(t, db, "carol"), MustCreateUser(t, db, "dave")
		group := MustCreateGroup(t, db, kv, "Ops", base, bob.ID, dave.ID)
		if _, err := db.AddMembers(ctx, group.ID, bob.ID, []int64{carol.ID, alice.ID}, base.Add(time.Hour), testSealer(kv), "add"); err != nil {
			t.Fatal(err)
		}
		remove := func(t *testing.T, actor, user chat.User, clientID string) chat.ChatChange {
			t.Helper()
			change, err := db.RemoveMember(ctx, group.ID, actor.ID, user.ID, base.Add(2*time.Hour), testSealer(kv), clientID)
			if err != nil {
				t.Fatal(err)
			}
			if change.Removed != user.ID || len(change.Messages) != len(change.System) {
				t.Fatalf("change = %+v", change)
			}
			if ok, err := db.IsMember(ctx, group.ID, user.ID); err != nil || ok {
				t.Fatalf("%s is still a member (%v)", user.Username, err)
			}
			if _, err := db.UserChat(ctx, user.ID, group.ID); chat.ErrorCode(err) != chat.ENotFound {
				t.Fatalf("%s still sees the group: %v", user.Username, err)
			}
			// The change's messages are the chat's newest, in order.
			history := MustHistory(t, db, group.ID)
			tail := history[len(history)-len(change.Messages):]
			for i, m := range tail {
				if m.ID != change.Messages[i].ID || !change.Messages[i].Created || m.UserID != actor.ID {
					t.Fatalf("message %d = %+v, change says %+v", i, m, change.Messages[i])
				}
				if got := MustOpenSystem(t, m); !sameEvents([]chat.SystemEvent{got}, change.System[i:i+1]) {
					t.Fatalf("message %d records %+v, change says %+v", i, got, change.System[i])
				}
			}
			return change
		}

		t.Run("the owner leaves: the longest-standing member takes over", func(t *testing.T) {
			change := remove(t, bob, bob, "leave-1")
			want := []chat.SystemEvent{
				{Event: chat.EventLeft, Actor: "bob"},
				{Event: chat.EventOwner, Actor: "bob", Users: []string{"dave"}},
			}
			if !sameEvents(change.System, want) || change.NewOwnerID != dave.ID {
				t.Fatalf("change = %+v, want events %+v and dave as owner", change, want)
			}
			history := MustHistory(t, db, group.ID)
			if got := history[len(history)-1].ClientID; got != "leave-1:owner" {
				t.Fatalf("owner message client id %q", got)
			}
			if got := MustMembers(t, db, group.ID); !slices.Equal(got, []string{"dave:owner", "alice:member", "carol:member"}) {
				t.Fatalf("members = %v", got)
			}
		})
		t.Run("the owner removes a member", func(t *testing.T) {
			change := remove(t, dave, carol, "remove-1")
			want := []chat.SystemEvent{{Event: chat.EventRemoved, Actor: "dave", Users: []string{"carol"}}}
			if !sameEvents(change.System, want) || change.NewOwnerID != 0 {
				t.Fatalf("change = %+v, want %+v", change, want)
			}
		})
		t.Run("removing someone who is not a member", func(t *testing.T) {
			before := len(MustHistory(t, db, group.ID))
			_, err := db.RemoveMember(ctx, group.ID, dave.ID, carol.ID, base, testSealer(kv), "remove-2")
			wantCode(t, err, chat.ENotFound)
			_, err = db.RemoveMember(ctx, group.ID, dave.ID, 99999, base, testSealer(kv), "remove-3")
			wantCode(t, err, chat.ENotFound)
			if after := len(MustHistory(t, db, group.ID)); after != before {
				t.Fatalf("a refused removal wrote %d messages", after-before)
			}
		})
		t.Run("a member who is not the owner leaves", func(t *testing.T) {
			// Re-add carol, then have her leave: not the owner, no hand-over.
			if _, err := db.AddMembers(ctx, group.ID, dave.ID, []int64{carol.ID}, base.Add(3*time.Hour), testSealer(kv), "add-again"); err != nil {
				t.Fatal(err)
			}
			change := remove(t, carol, carol, "leave-2")
			if !sameEvents(change.System, []chat.SystemEvent{{Event: chat.EventLeft, Actor: "carol"}}) || change.NewOwnerID != 0 {
				t.Fatalf("change = %+v", change)
			}
		})
		t.Run("the owner is removed by an admin: ties go to the smaller user id", func(t *testing.T) {
			// Permissions are the caller's business: anyone the caller lets
			// through may remove the owner.
			if _, err := db.AddMembers(ctx, group.ID, dave.ID, []int64{carol.ID}, base.Add(time.Hour), testSealer(kv), "add-3"); err != nil {
				t.Fatal(err)
			}
			change := remove(t, alice, dave, "remove-owner")
			want := []chat.SystemEvent{
				{Event: chat.EventRemoved, Actor: "alice", Users: []string{"dave"}},
				{Event: chat.EventOwner, Actor: "dave", Users: []string{"alice"}},
			}
			if !sameEvents(change.System, want) || change.NewOwnerID != alice.ID {
				t.Fatalf("change = %+v, want %+v", change, want)
			}
			if got := MustMembers(t, db, group.ID); !slices.Equal(got, []string{"alice:owner", "carol:member"}) {
				t.Fatalf("members = %v", got)
			}
		})
		t.Run("the last member leaves", func(t *testing.T) {
			remove(t, carol, carol, "leave-3")
			change := remove(t, alice, alice, "leave-4")
			if !sameEvents(change.System, []chat.SystemEvent{{Event: chat.EventLeft, Actor: "alice"}}) || change.NewOwnerID != 0 {
				t.Fatalf("change = %+v", change)
			}
			if got := MustMembers(t, db, group.ID); len(got) != 0 {
				t.Fatalf("members = %v", got)
			}
		})
		t.Run("from a direct chat", func(t *testing.T) {
			direct := MustCreateDirect(t, db, base, alice.ID, bob.ID)
			_, err := db.RemoveMember(ctx, direct.ID, alice.ID, alice.ID, base, testSealer(kv), "leave-direct")
			wantCode(t, err, chat.EInvalid)
			if got := MustMembers(t, db, direct.ID); len(got) != 2 {
				t.Fatalf("members = %v", got)
			}
		})
	})
}

func TestRenameChat(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID, bob.ID)

		change, err := db.RenameChat(ctx, group.ID, bob.ID, "Night shift", base.Add(time.Hour), testSealer(kv), "rename-1")
		if err != nil {
			t.Fatal(err)
		}
		want := chat.SystemEvent{Event: chat.EventRenamed, Actor: "bob", Title: "Night shift"}
		if len(change.Messages) != 1 || !sameEvents(change.System, []chat.SystemEvent{want}) {
			t.Fatalf("change = %+v", change)
		}
		if got, err := db.ChatByID(ctx, group.ID); err != nil || got.Title != "Night shift" {
			t.Fatalf("renamed chat = %+v, %v", got, err)
		}
		if got := MustSystemEvents(t, db, group.ID); len(got) != 2 || !sameEvents(got[1:], []chat.SystemEvent{want}) {
			t.Fatalf("events = %+v", got)
		}

		direct := MustCreateDirect(t, db, base, alice.ID, bob.ID)
		refused := []struct {
			name, title, clientID string
			chatID                int64
			code                  string
		}{
			{"a direct chat", "Us", "rename-2", direct.ID, chat.EInvalid},
			{"the global chat", "Everyone", "rename-3", MustGlobal(t, db).ID, chat.EInvalid},
			{"no chat", "Nowhere", "rename-4", 99999, chat.ENotFound},
			{"a title too long", strings.Repeat("x", 256), "rename-5", group.ID, chat.EInvalid},
			// The message fails, so the title must not change either.
			{"a client id already used", "Day shift", "rename-1", group.ID, chat.EConflict},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				_, err := db.RenameChat(ctx, tt.chatID, bob.ID, tt.title, base.Add(2*time.Hour), testSealer(kv), tt.clientID)
				wantCode(t, err, tt.code)
				if got, err := db.ChatByID(ctx, group.ID); err != nil || got.Title != "Night shift" {
					t.Fatalf("group after a refused rename = %+v, %v", got, err)
				}
			})
		}
	})
}

func TestUserChats(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		global := MustGlobal(t, db)
		alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
		minute := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

		// global: activity at minute 1. Two of bob's messages and one of
		// alice's: alice has 2 unread.
		g := MustInsert(t, db,
			text(global.ID, bob.ID, kv, "g1", "hi", minute(1)),
			text(global.ID, alice.ID, kv, "g2", "hello", minute(1)),
			text(global.ID, bob.ID, kv, "g3", "how are you", minute(1)),
		)
		// direct alice–bob: activity at minute 2. bob sends three; deletes
		// one and edits another, which leaves 2 unread for alice and the
		// newest message (not the events) as the last.
		direct := MustCreateDirect(t, db, minute(0), alice.ID, bob.ID)
		d := MustInsert(t, db,
			text(direct.ID, bob.ID, kv, "d1", "one", minute(2)),
			text(direct.ID, bob.ID, kv, "d2", "two", minute(2)),
			chat.NewMessage{ChatID: direct.ID, UserID: bob.ID, Kind: chat.MessageFile, KeyVersion: kv, Body: []byte("file"), ClientID: "d3", CreatedAt: minute(2)},
		)
		for _, e := range []chat.Edit{
			{ChatID: direct.ID, UserID: bob.ID, TargetID: d[0].ID, Delete: true, EventKeyVersion: kv, EventClientID: "d1-del", At: minute(5)},
			{ChatID: direct.ID, UserID: bob.ID, TargetID: d[1].ID, KeyVersion: kv, Body: []byte("TWO"), EventKeyVersion: kv, EventClientID: "d2-edit", At: minute(5)},
		} {
			if _, err := db.EditMessage(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		// group: created at minute 3 by alice; its system messages are not
		// unread. carol writes once.
		group := MustCreateGroup(t, db, kv, "Ops", minute(3), alice.ID, bob.ID, carol.ID)
		gr := MustInsert(t, db, text(group.ID, carol.ID, kv, "o1", "ops", minute(3)))
		// direct alice–carol: no messages, created at minute 4, so it is the
		// most recent activity of all.
		quiet := MustCreateDirect(t, db, minute(4), carol.ID, alice.ID)

		sums, err := db.UserChats(ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			id            int64
			role          string
			unread        int
			lastID        int64
			lastAt        time.Time
			members       []string
			lastReadID    int64
			title, kind   string
			createdAt     time.Time
			createdBy     int64
			memberReadIDs []int64
		}
		want := []row{
			{id: quiet.ID, role: chat.MemberMember, kind: chat.KindDirect, createdAt: minute(4), createdBy: carol.ID,
				members: []string{"alice:member", "carol:member"}, memberReadIDs: []int64{0, 0}},
			{id: group.ID, role: chat.MemberOwner, unread: 1, lastID: gr[0].ID, lastAt: minute(3), kind: chat.KindGroup, title: "Ops",
				createdAt: minute(3), createdBy: alice.ID, members: []string{"alice:owner", "bob:member", "carol:member"}, memberReadIDs: []int64{0, 0, 0}},
			{id: direct.ID, role: chat.MemberMember, unread: 2, lastID: d[2].ID, lastAt: minute(2), kind: chat.KindDirect,
				createdAt: minute(0), createdBy: alice.ID, members: []string{"alice:member", "bob:member"}, memberReadIDs: []int64{0, 0}},
			{id: global.ID, role: chat.MemberMember, unread: 2, lastID: g[2].ID, lastAt: minute(1), kind: chat.KindGlobal, title: "Global",
				createdAt: global.CreatedAt}, // global lists no members: everyone is in it
		}
		check := func(t *testing.T, sums []chat.ChatSummary, want []row) {
			t.Helper()
			if len(sums) != len(want) {
				t.Fatalf("%d chats, want %d: %+v", len(sums), len(want), sums)
			}
			for i, w := range want {
				s := sums[i]
				readIDs := make([]int64, len(s.Members))
				for j, m := range s.Members {
					readIDs[j] = m.LastReadID
				}
				if s.ID != w.id || s.Role != w.role || s.Unread != w.unread || s.LastMessageID != w.lastID || !s.LastMessageAt.Equal(w.lastAt) ||
					s.LastReadID != w.lastReadID || s.Title != w.title || s.Kind != w.kind || !s.CreatedAt.Equal(w.createdAt) || s.CreatedBy != w.createdBy ||
					!slices.Equal(memberNames(s.Members), w.members) || !slices.Equal(readIDs, w.memberReadIDs) {
					t.Fatalf("chat %d = %+v\nwant %+v", i, s, w)
				}
			}
		}
		check(t, sums, want)

		t.Run("one chat", func(t *testing.T) {
			for _, w := range want {
				s, err := db.UserChat(ctx, alice.ID, w.id)
				if err != nil {
					t.Fatal(err)
				}
				check(t, []chat.ChatSummary{s}, []row{w})
			}
		})
		t.Run("not a member, or no such chat", func(t *testing.T) {
			for _, id := range []int64{quiet.ID, 99999, 0} {
				_, err := db.UserChat(ctx, bob.ID, id)
				wantCode(t, err, chat.ENotFound)
			}
			if sums, err := db.UserChats(ctx, 99999); err != nil || len(sums) != 0 {
				t.Fatalf("UserChats of nobody = %+v, %v", sums, err)
			}
		})
		t.Run("bob's own messages are not unread for him", func(t *testing.T) {
			s, err := db.UserChat(ctx, bob.ID, direct.ID)
			if err != nil || s.Unread != 0 {
				t.Fatalf("bob's direct chat = %+v, %v; want 0 unread", s, err)
			}
			s, err = db.UserChat(ctx, bob.ID, global.ID)
			if err != nil || s.Unread != 1 {
				t.Fatalf("bob's global chat = %+v, %v; want 1 unread (alice's)", s, err)
			}
		})
		t.Run("mark read", func(t *testing.T) {
			events := MustHistory(t, db, direct.ID)
			newest := events[len(events)-1].ID // the edit event
			steps := []struct {
				name   string
				upTo   int64
				want   int64
				unread int
			}{
				{"up to the first message", d[0].ID, d[0].ID, 2},
				{"up to the second", d[1].ID, d[1].ID, 1},
				{"never back", d[0].ID, d[1].ID, 1},
				{"not below zero", -5, d[1].ID, 1},
				{"never past the newest row", newest + 1000, newest, 0},
			}
			for _, st := range steps {
				got, err := db.MarkRead(ctx, direct.ID, alice.ID, st.upTo)
				if err != nil || got != st.want {
					t.Fatalf("%s: MarkRead(%d) = %d, %v; want %d", st.name, st.upTo, got, err, st.want)
				}
				s, err := db.UserChat(ctx, alice.ID, direct.ID)
				if err != nil || s.LastReadID != st.want || s.Unread != st.unread {
					t.Fatalf("%s: summary = %+v, %v; want last read %d, %d unread", st.name, s, err, st.want, st.unread)
				}
				if s.Members[0].LastReadID != st.want {
					t.Fatalf("%s: alice's member row says last read %d", st.name, s.Members[0].LastReadID)
				}
			}
			// A new message from bob is unread again.
			MustInsert(t, db, text(direct.ID, bob.ID, kv, "d4", "four", minute(6)))
			if s, err := db.UserChat(ctx, alice.ID, direct.ID); err != nil || s.Unread != 1 {
				t.Fatalf("after a new message: %+v, %v", s, err)
			}

			_, err := db.MarkRead(ctx, quiet.ID, bob.ID, 1)
			wantCode(t, err, chat.ENotFound)
			_, err = db.MarkRead(ctx, 99999, bob.ID, 1)
			wantCode(t, err, chat.ENotFound)
			if got, err := db.MarkRead(ctx, quiet.ID, alice.ID, 1000); err != nil || got != 0 {
				t.Fatalf("MarkRead in an empty chat = %d, %v; want 0", got, err)
			}
		})
		t.Run("unread is capped", func(t *testing.T) {
			busy := MustCreateGroup(t, db, kv, "Busy", base, alice.ID, bob.ID)
			msgs := make([]chat.NewMessage, chat.UnreadCap+5)
			for i := range msgs {
				msgs[i] = text(busy.ID, bob.ID, kv, fmt.Sprintf("busy-%d", i), "spam", base)
			}
			ins := MustInsert(t, db, msgs...)
			if s, err := db.UserChat(ctx, alice.ID, busy.ID); err != nil || s.Unread != chat.UnreadCap {
				t.Fatalf("unread = %d, %v; want the cap %d", s.Unread, err, chat.UnreadCap)
			}
			if _, err := db.MarkRead(ctx, busy.ID, alice.ID, ins[9].ID); err != nil {
				t.Fatal(err)
			}
			if s, err := db.UserChat(ctx, alice.ID, busy.ID); err != nil || s.Unread != chat.UnreadCap-5 {
				t.Fatalf("unread = %d, %v; want %d", s.Unread, err, chat.UnreadCap-5)
			}
		})
	})
}

func TestEditMessage(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv, kv2 := MustKeyVersion(t, db), MustKeyVersion(t, db)
		global := MustGlobal(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID, bob.ID)
		ins := MustInsert(t, db,
			text(global.ID, alice.ID, kv, "a1", "first", base),
			text(global.ID, bob.ID, kv, "b1", "bob's", base),
			chat.NewMessage{ChatID: global.ID, UserID: alice.ID, Kind: chat.MessageFile, KeyVersion: kv, Body: []byte("file"), ClientID: "a2", CreatedAt: base},
			text(group.ID, alice.ID, kv, "a3", "in ops", base),
		)
		first, bobs, file, inOps := ins[0].ID, ins[1].ID, ins[2].ID, ins[3].ID
		at := base.Add(time.Minute)
		edit := func(target int64, clientID, body string) chat.Edit {
			return chat.Edit{ChatID: global.ID, UserID: alice.ID, TargetID: target, KeyVersion: kv2, Body: []byte(body),
				EventKeyVersion: kv, EventClientID: clientID, At: at}
		}
		del := func(target int64, clientID string) chat.Edit {
			return chat.Edit{ChatID: global.ID, UserID: alice.ID, TargetID: target, Delete: true, EventKeyVersion: kv2, EventClientID: clientID, At: at}
		}

		res, err := db.EditMessage(ctx, edit(first, "e1", "first, corrected"))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Event.Created || res.Event.ChatID != global.ID || !res.Event.CreatedAt.Equal(at) || res.Event.ID <= inOps {
			t.Fatalf("event = %+v", res.Event)
		}
		tg := res.Target
		if tg.ID != first || string(tg.Body) != "first, corrected" || tg.KeyVersion != kv2 || !tg.EditedAt.Equal(at) || !tg.DeletedAt.IsZero() ||
			tg.Kind != chat.MessageText || tg.ClientID != "a1" || tg.Username != "alice" || tg.ChatName != chat.GlobalChatName || !tg.CreatedAt.Equal(base) {
			t.Fatalf("target after edit = %+v", tg)
		}
		history := MustHistory(t, db, global.ID)
		ev := history[len(history)-1]
		if ev.ID != res.Event.ID || ev.Kind != chat.MessageEdit || ev.TargetID != first || ev.UserID != alice.ID || ev.Username != "alice" ||
			ev.ClientID != "e1" || ev.KeyVersion != kv || len(ev.Body) != 0 || !ev.CreatedAt.Equal(at) || ev.ReplyTo != 0 {
			t.Fatalf("event row = %+v", ev)
		}

		t.Run("a retried edit changes nothing", func(t *testing.T) {
			again := edit(first, "e1", "something else")
			again.At = at.Add(time.Hour)
			res2, err := db.EditMessage(ctx, again)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Event.Created || res2.Event.ID != res.Event.ID || res2.Event.ChatID != global.ID || !res2.Event.CreatedAt.Equal(at) {
				t.Fatalf("retry event = %+v, want %+v with Created false", res2.Event, res.Event)
			}
			if string(res2.Target.Body) != "first, corrected" || !res2.Target.EditedAt.Equal(at) {
				t.Fatalf("retry target = %+v", res2.Target)
			}
			if n := len(MustHistory(t, db, global.ID)); n != len(history) {
				t.Fatalf("a retry wrote %d rows", n-len(history))
			}
		})

		refused := []struct {
			name string
			e    chat.Edit
			code string
		}{
			{"someone else's message", edit(bobs, "e2", "mine now"), chat.EForbidden},
			{"deleting someone else's message", del(bobs, "e3"), chat.EForbidden},
			{"editing a file", edit(file, "e4", "text"), chat.EInvalid},
			{"an event", edit(res.Event.ID, "e5", "x"), chat.ENotFound},
			{"a message of another chat", edit(inOps, "e6", "x"), chat.ENotFound},
			{"a missing message", edit(99999, "e7", "x"), chat.ENotFound},
			{"a client id of a message", edit(first, "a2", "x"), chat.EConflict},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				before := MustHistory(t, db, global.ID)
				_, err := db.EditMessage(ctx, tt.e)
				wantCode(t, err, tt.code)
				after := MustHistory(t, db, global.ID)
				if !slices.EqualFunc(before, after, func(a, b chat.Message) bool {
					return a.ID == b.ID && bytes.Equal(a.Body, b.Body) && a.EditedAt.Equal(b.EditedAt) && a.DeletedAt.Equal(b.DeletedAt)
				}) {
					t.Fatalf("a refused change changed the chat")
				}
			})
		}

		t.Run("delete", func(t *testing.T) {
			res, err := db.EditMessage(ctx, del(file, "d1"))
			if err != nil {
				t.Fatal(err)
			}
			tg := res.Target
			if !res.Event.Created || tg.ID != file || len(tg.Body) != 0 || !tg.DeletedAt.Equal(at) || tg.Kind != chat.MessageFile ||
				tg.ClientID != "a2" || tg.KeyVersion != kv {
				t.Fatalf("deleted target = %+v (event %+v)", tg, res.Event)
			}
			rows, err := db.MessagesByIDs(ctx, global.ID, []int64{res.Event.ID})
			if err != nil || len(rows) != 1 || rows[0].Kind != chat.MessageDelete || rows[0].TargetID != file || rows[0].KeyVersion != kv2 {
				t.Fatalf("delete event row = %+v, %v", rows, err)
			}

			again, err := db.EditMessage(ctx, del(file, "d1"))
			if err != nil || again.Event.Created || again.Event.ID != res.Event.ID || !again.Target.DeletedAt.Equal(at) {
				t.Fatalf("retried delete = %+v, %v", again, err)
			}
			_, err = db.EditMessage(ctx, del(file, "d2"))
			wantCode(t, err, chat.EConflict)

			if _, err := db.EditMessage(ctx, del(first, "d3")); err != nil {
				t.Fatal(err)
			}
			_, err = db.EditMessage(ctx, edit(first, "e8", "back from the dead"))
			wantCode(t, err, chat.EConflict)
		})
		t.Run("a retried client id of another chat", func(t *testing.T) {
			e := edit(inOps, "d1", "x")
			e.ChatID = group.ID
			_, err := db.EditMessage(ctx, e)
			wantCode(t, err, chat.EConflict)
		})
	})
}

// A change retried while the first attempt is still running is applied
// once, and every attempt gets the same event.
func TestEditMessageRace(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		global := MustGlobal(t, db)
		alice := MustCreateUser(t, db, "alice")
		for _, remove := range []bool{false, true} {
			target := MustInsert(t, db, text(global.ID, alice.ID, kv, fmt.Sprintf("m-%v", remove), "text", base))[0].ID
			const n = 6
			var (
				wg      sync.WaitGroup
				results [n]chat.EditResult
				errs    [n]error
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = db.EditMessage(ctx, chat.Edit{ChatID: global.ID, UserID: alice.ID, TargetID: target, Delete: remove,
						KeyVersion: kv, Body: []byte("new"), EventKeyVersion: kv, EventClientID: fmt.Sprintf("change-%v", remove), At: base})
				}()
			}
			wg.Wait()
			created := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("delete %v, attempt %d: %v", remove, i, errs[i])
				}
				if results[i].Event.ID != results[0].Event.ID {
					t.Fatalf("attempts got events %d and %d", results[0].Event.ID, results[i].Event.ID)
				}
				if results[i].Event.Created {
					created++
				}
			}
			if created != 1 {
				t.Fatalf("delete %v: %d attempts report making the change, want 1", remove, created)
			}
		}
	})
}

// TestJoiningStartsRead: a member added to an active group, and a user
// signing up to a global chat with history, start with that history read.
func TestJoiningStartsRead(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID)
		MustInsert(t, db, text(group.ID, alice.ID, kv, "g1", "one", base), text(group.ID, alice.ID, kv, "g2", "two", base))
		global := MustGlobal(t, db)
		gm := MustInsert(t, db, text(global.ID, alice.ID, kv, "w1", "welcome", base))

		if _, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{bob.ID}, base.Add(time.Minute), testSealer(kv), "add-bob"); err != nil {
			t.Fatal(err)
		}
		sum, err := db.UserChat(ctx, bob.ID, group.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Unread != 0 || sum.LastReadID == 0 {
			t.Fatalf("bob joined with %d unread, last read %d; want the history read", sum.Unread, sum.LastReadID)
		}
		carol := MustCreateUser(t, db, "carol")
		sum, err = db.UserChat(ctx, carol.ID, global.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Unread != 0 || sum.LastReadID != gm[0].ID {
			t.Fatalf("carol signed up with %d unread, last read %d; want %d", sum.Unread, sum.LastReadID, gm[0].ID)
		}
	})
}

// The chat cache (chats by name and id, each user's chats) follows every
// change made through the store: lookups warmed before a change see it at
// once after.
func TestChatCacheFollowsChanges(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		global := MustGlobal(t, db)
		alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID)
		chatsOf := func(u chat.User, want ...int64) {
			t.Helper()
			got, err := db.UserChatIDs(ctx, u.ID)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("chats of %s = %v, %v; want %v", u.Username, got, err, want)
			}
			for _, id := range []int64{global.ID, group.ID} {
				member, err := db.IsMember(ctx, id, u.ID)
				if err != nil || member != slices.Contains(want, id) {
					t.Fatalf("IsMember(%d, %s) = %v, %v; want %v", id, u.Username, member, err, slices.Contains(want, id))
				}
			}
		}
		titled := func(want string) {
			t.Helper()
			byID, err := db.ChatByID(ctx, group.ID)
			if err != nil || byID.Title != want {
				t.Fatalf("ChatByID title = %q, %v; want %q", byID.Title, err, want)
			}
			byName, err := db.ChatByName(ctx, group.Name)
			if err != nil || byName != byID {
				t.Fatalf("ChatByName = %+v, %v; want %+v", byName, err, byID)
			}
		}

		chatsOf(bob, global.ID) // warms the cache
		titled("Ops")
		if _, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{bob.ID}, base.Add(time.Minute), testSealer(kv), "add"); err != nil {
			t.Fatal(err)
		}
		chatsOf(bob, global.ID, group.ID)

		if _, err := db.RenameChat(ctx, group.ID, alice.ID, "Night shift", base.Add(2*time.Minute), testSealer(kv), "rename"); err != nil {
			t.Fatal(err)
		}
		titled("Night shift")

		if _, err := db.RemoveMember(ctx, group.ID, bob.ID, bob.ID, base.Add(3*time.Minute), testSealer(kv), "leave"); err != nil {
			t.Fatal(err)
		}
		chatsOf(bob, global.ID)

		// A new chat, and a new user (who joins global when created).
		chatsOf(carol, global.ID)
		direct := MustCreateDirect(t, db, base, bob.ID, carol.ID)
		if got, err := db.UserChatIDs(ctx, carol.ID); err != nil || !slices.Equal(got, []int64{global.ID, direct.ID}) {
			t.Fatalf("carol's chats after a direct chat = %v, %v", got, err)
		}
		dave := MustCreateUser(t, db, "dave")
		chatsOf(dave, global.ID)

		// A caller changing the slice it got does not change the cache.
		got, _ := db.UserChatIDs(ctx, dave.ID)
		got[0] = -1
		chatsOf(dave, global.ID)
	})
}

// UsersChatIDs answers many users at once, from the cache and the
// database alike, across more than one query's worth of users, and
// follows changes as UserChatIDs does.
func TestUsersChatIDs(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		global := MustGlobal(t, db)
		alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
		group := MustCreateGroup(t, db, kv, "Ops", base, alice.ID)
		direct := MustCreateDirect(t, db, base, bob.ID, carol.ID)
		if _, err := db.UserChatIDs(ctx, bob.ID); err != nil { // bob's list is cached, the others are not
			t.Fatal(err)
		}
		// 600 users: the three, and ids nobody has (in no chat), in two queries.
		ask := []int64{carol.ID, bob.ID, alice.ID, carol.ID}
		for id := int64(1_000_000); len(ask) < 600; id++ {
			ask = append(ask, id)
		}
		check := func(want map[int64][]int64) {
			t.Helper()
			got, err := db.UsersChatIDs(ctx, ask)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 599 { // carol is asked for twice
				t.Fatalf("UsersChatIDs answered %d users; want 599", len(got))
			}
			for _, u := range ask {
				ids, ok := got[u]
				w, known := want[u]
				if !known {
					w = []int64{}
				}
				if !ok || ids == nil || !slices.Equal(ids, w) {
					t.Fatalf("chats of user %d = %v (present %v); want %v", u, ids, ok, w)
				}
				// The same as one user's lookup, now served from the cache.
				if one, err := db.UserChatIDs(ctx, u); err != nil || !slices.Equal(one, w) {
					t.Fatalf("UserChatIDs(%d) = %v, %v; want %v", u, one, err, w)
				}
			}
		}
		check(map[int64][]int64{
			alice.ID: {global.ID, group.ID},
			bob.ID:   {global.ID, direct.ID},
			carol.ID: {global.ID, direct.ID},
		})
		// A change forgets what the batch cached.
		if _, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{bob.ID, carol.ID}, base.Add(time.Minute), testSealer(kv), "add"); err != nil {
			t.Fatal(err)
		}
		check(map[int64][]int64{
			alice.ID: {global.ID, group.ID},
			bob.ID:   {global.ID, group.ID, direct.ID},
			carol.ID: {global.ID, group.ID, direct.ID},
		})
		if got, err := db.UsersChatIDs(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("UsersChatIDs(nil) = %v, %v", got, err)
		}
		db.Close()
		if _, err := db.UsersChatIDs(ctx, []int64{1_000_001}); err == nil {
			t.Fatal("UsersChatIDs on a closed store succeeded")
		}
	})
}
