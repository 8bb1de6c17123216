package chats_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/testutil/servicetest"
)

func MustService(tb testing.TB) (*chats.Service, *servicetest.World) {
	tb.Helper()
	w := servicetest.MustWorld(tb)
	return chats.New(chats.Options{Store: w.Store, Ring: w.Ring, Sequencer: w.Sequencer, Broker: w.Broker, Log: w.Log, CommitTimeout: 5 * time.Second}), w
}

func MustGroup(tb testing.TB, s *chats.Service, owner chat.Identity, title string, members ...string) chat.ChatSummary {
	tb.Helper()
	sum, created, err := s.Create(context.Background(), owner, chats.CreateRequest{Kind: chat.KindGroup, Title: title, Members: members})
	if err != nil || !created {
		tb.Fatalf("create group %q: %v, %v", title, created, err)
	}
	return sum
}

// kinds lists the published events as "type" or "type→users" for events
// addressed to users, with the membership change they make.
func kinds(tb testing.TB, w *servicetest.World) []string {
	tb.Helper()
	var out []string
	frames := w.Broker.Frames(tb)
	for i, ev := range w.Broker.Events() {
		k, _ := frames[i]["type"].(string)
		if ev.Membership != "" {
			k += ":" + ev.Membership
		}
		out = append(out, k)
	}
	return out
}

func TestResolveAnswersNonMembersLikeMissingChats(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice, bob, carol := w.MustUser(t, "alice"), w.MustUser(t, "bob"), w.MustUser(t, "carol")
	g := MustGroup(t, s, alice, "Ops", "bob")
	for _, ref := range []string{g.Name, strconv.FormatInt(g.ID, 10), " " + g.Name + " "} {
		if c, err := s.Resolve(ctx, bob, ref); err != nil || c.ID != g.ID {
			t.Fatalf("member resolving %q: %+v, %v", ref, c, err)
		}
	}
	if c, err := s.Resolve(ctx, carol, ""); err != nil || c.Name != chat.GlobalChatName {
		t.Fatalf("empty ref: %+v, %v", c, err)
	}
	notMember, err := s.Resolve(ctx, carol, g.Name)
	_, missing := s.Resolve(ctx, carol, "group:nope")
	_, tooLong := s.Resolve(ctx, carol, strings.Repeat("x", 65))
	if chat.ErrorCode(err) != chat.EForbidden || chat.ErrorMessage(err) != chat.ErrorMessage(missing) ||
		chat.ErrorMessage(err) != chat.ErrorMessage(tooLong) {
		t.Fatalf("non-member %+v, %v; missing %v; too long %v", notMember, err, missing, tooLong)
	}
}

func TestCreateDirectOncePerPair(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice, bob := w.MustUser(t, "alice"), w.MustUser(t, "bob")
	sum, created, err := s.Create(ctx, alice, chats.CreateRequest{Kind: chat.KindDirect, Members: []string{"BOB"}})
	if err != nil || !created || sum.Kind != chat.KindDirect || len(sum.Members) != 2 {
		t.Fatalf("create: %+v, %v, %v", sum, created, err)
	}
	if got := kinds(t, w); !slices.Equal(got, []string{"chat_added:join"}) {
		t.Fatalf("events %v", got)
	}
	if ev := w.Broker.Events()[0]; !slices.Equal(ev.UserIDs, []int64{alice.UserID, bob.UserID}) {
		t.Fatalf("chat_added went to %v", ev.UserIDs)
	}
	again, created, err := s.Create(ctx, bob, chats.CreateRequest{Kind: chat.KindDirect, Members: []string{"alice"}})
	if err != nil || created || again.ID != sum.ID {
		t.Fatalf("from the other side: %+v, %v, %v", again, created, err)
	}
	for _, tt := range []struct {
		name string
		req  chats.CreateRequest
		code string
	}{
		{"with oneself", chats.CreateRequest{Kind: chat.KindDirect, Members: []string{"alice"}}, chat.EInvalid},
		{"with two", chats.CreateRequest{Kind: chat.KindDirect, Members: []string{"bob", "bob"}}, chat.EInvalid},
		{"with nobody known", chats.CreateRequest{Kind: chat.KindDirect, Members: []string{"zed"}}, chat.ENotFound},
		{"of no kind", chats.CreateRequest{Kind: "global", Members: []string{"bob"}}, chat.EInvalid},
		{"a group without a title", chats.CreateRequest{Kind: chat.KindGroup, Title: "  "}, chat.EInvalid},
		{"a group with a title too long", chats.CreateRequest{Kind: chat.KindGroup, Title: strings.Repeat("é", 51)}, chat.EInvalid},
		{"a group of too many at once", chats.CreateRequest{Kind: chat.KindGroup, Title: "Big", Members: make([]string, chat.MaxAddAtOnce+1)}, chat.EInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.Create(ctx, alice, tt.req); chat.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
}

// A membership change publishes, in order: the new members' subscription
// with the chat, the system message to the chat, the removed member's
// farewell (and unsubscription) last, and the group's new state.
func TestMembershipChangesPublishInOrder(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice, bob, carol := w.MustUser(t, "alice"), w.MustUser(t, "bob"), w.MustUser(t, "carol")
	w.MustUser(t, "dave")
	g := MustGroup(t, s, alice, "  Ops  ", "bob")
	if g.Title != "Ops" || g.Role != chat.MemberOwner {
		t.Fatalf("group %+v", g)
	}
	if got := kinds(t, w); !slices.Equal(got, []string{"chat_added:join", "system", "chat_updated"}) {
		t.Fatalf("create published %v", got)
	}
	c, err := s.Resolve(ctx, alice, g.Name)
	if err != nil {
		t.Fatal(err)
	}

	w.Broker.Reset()
	if _, err := s.AddMembers(ctx, bob, c, []string{"carol"}); chat.ErrorCode(err) != chat.EForbidden {
		t.Fatalf("a member adding: %v", err)
	}
	sum, err := s.AddMembers(ctx, alice, c, []string{"carol", "bob"})
	if err != nil || len(sum.Members) != 3 {
		t.Fatalf("add: %+v, %v", sum, err)
	}
	if got := kinds(t, w); !slices.Equal(got, []string{"chat_added:join", "system", "chat_updated"}) {
		t.Fatalf("add published %v", got)
	}
	if ev := w.Broker.Events()[0]; !slices.Equal(ev.UserIDs, []int64{carol.UserID}) {
		t.Fatalf("only carol joins, not %v", ev.UserIDs)
	}
	if f := w.Broker.Frames(t)[1]; f["text"] != "alice added carol." {
		t.Fatalf("system message %v", f)
	}

	w.Broker.Reset()
	if err := s.RemoveMember(ctx, bob, c, "carol"); chat.ErrorCode(err) != chat.EForbidden {
		t.Fatalf("a member removing another: %v", err)
	}
	if err := s.RemoveMember(ctx, alice, c, "dave"); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("removing a non-member: %v", err)
	}
	if err := s.RemoveMember(ctx, alice, c, "carol"); err != nil {
		t.Fatal(err)
	}
	if got := kinds(t, w); !slices.Equal(got, []string{"system", "chat_removed:leave", "chat_updated"}) {
		t.Fatalf("remove published %v", got)
	}

	// The owner leaves: bob, the longest-standing member, becomes owner.
	w.Broker.Reset()
	if err := s.RemoveMember(ctx, alice, c, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := kinds(t, w); !slices.Equal(got, []string{"system", "system", "chat_removed:leave", "chat_updated"}) {
		t.Fatalf("leave published %v", got)
	}
	if f := w.Broker.Frames(t)[1]; f["text"] != "bob is now the owner." {
		t.Fatalf("ownership message %v", f)
	}
	if _, err := s.Resolve(ctx, alice, g.Name); chat.ErrorCode(err) != chat.EForbidden {
		t.Fatalf("alice still resolves the group she left: %v", err)
	}
	if sum, err := s.Rename(ctx, bob, c, "Night shift"); err != nil || sum.Title != "Night shift" || sum.Role != chat.MemberOwner {
		t.Fatalf("rename by the new owner: %+v, %v", sum, err)
	}
	if _, err := s.Rename(ctx, bob, c, "\x00"); chat.ErrorCode(err) != chat.EInvalid {
		t.Fatalf("a title with a control character: %v", err)
	}
	if _, err := s.Rename(ctx, bob, w.Global, "Everyone"); chat.ErrorCode(err) != chat.EInvalid {
		t.Fatalf("renaming global: %v", err)
	}
}

func TestMarkReadTellsOnlyTheReader(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice := w.MustUser(t, "alice")
	g := MustGroup(t, s, alice, "Ops")
	c, err := s.Resolve(ctx, alice, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	w.Broker.Reset()
	last, err := s.MarkRead(ctx, alice, c, 1<<40)
	if err != nil || last <= 0 {
		t.Fatalf("mark read: %d, %v", last, err)
	}
	evs := w.Broker.Events()
	if len(evs) != 1 || !slices.Equal(evs[0].UserIDs, []int64{alice.UserID}) || w.Broker.Frames(t)[0]["last_read_id"] != float64(last) {
		t.Fatalf("published %+v", evs)
	}
	if _, err := s.MarkRead(ctx, alice, c, 0); chat.ErrorCode(err) != chat.EInvalid {
		t.Fatalf("message id 0: %v", err)
	}
}

func TestSearchUsers(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	for _, n := range []string{"alice", "alfred", "bob"} {
		w.MustUser(t, n)
	}
	users, err := s.SearchUsers(ctx, " AL ", 10)
	if err != nil || len(users) != 2 || users[0].Username != "alfred" || users[1].Username != "alice" {
		t.Fatalf("search: %+v, %v", users, err)
	}
	for _, q := range []string{strings.Repeat("a", chats.MaxSearchPrefix+1), "\xff"} {
		if _, err := s.SearchUsers(ctx, q, 10); chat.ErrorCode(err) != chat.EInvalid {
			t.Fatalf("search %q: %v", q, err)
		}
	}
}
