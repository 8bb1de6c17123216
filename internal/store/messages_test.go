package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

func TestKeyVersions(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		if kvs, err := db.KeyVersions(ctx); err != nil || len(kvs) != 0 {
			t.Fatalf("a new database has key versions %v, %v", kvs, err)
		}
		var want []chat.KeyVersion
		for i := range 3 {
			wrapped := []byte(fmt.Sprintf("wrapped-%d\x00\xff", i)) // binary, not text
			at := base.Add(time.Duration(i) * time.Hour)
			id, err := db.InsertKeyVersion(ctx, wrapped, at)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) > 0 && id <= want[len(want)-1].ID {
				t.Fatalf("key version ids not increasing: %d after %d", id, want[len(want)-1].ID)
			}
			want = append(want, chat.KeyVersion{ID: id, WrappedKey: wrapped, CreatedAt: at})
		}
		same := func(t *testing.T, want []chat.KeyVersion) {
			t.Helper()
			got, err := db.KeyVersions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, want, func(a, b chat.KeyVersion) bool {
				return a.ID == b.ID && bytes.Equal(a.WrappedKey, b.WrappedKey) && a.CreatedAt.Equal(b.CreatedAt)
			}) {
				t.Fatalf("KeyVersions = %+v, want %+v", got, want)
			}
		}
		same(t, want)

		t.Run("replace rewrites the named versions", func(t *testing.T) {
			want[0].WrappedKey = []byte("rewrapped-0")
			want[2].WrappedKey = []byte("rewrapped-2")
			if err := db.ReplaceWrappedKeys(ctx, []chat.KeyVersion{{ID: want[0].ID, WrappedKey: want[0].WrappedKey}, {ID: want[2].ID, WrappedKey: want[2].WrappedKey}}); err != nil {
				t.Fatal(err)
			}
			same(t, want)
		})
		t.Run("replace with a missing id changes nothing", func(t *testing.T) {
			err := db.ReplaceWrappedKeys(ctx, []chat.KeyVersion{
				{ID: want[0].ID, WrappedKey: []byte("must not stick")},
				{ID: want[2].ID + 1000, WrappedKey: []byte("nowhere")},
			})
			if err == nil {
				t.Fatal("replacing a key version that does not exist succeeded")
			}
			same(t, want)
		})
		t.Run("replace with the bytes already stored", func(t *testing.T) {
			if err := db.ReplaceWrappedKeys(ctx, []chat.KeyVersion{{ID: want[1].ID, WrappedKey: want[1].WrappedKey}}); err != nil {
				t.Fatalf("rewriting a key version with its own bytes failed: %v", err)
			}
			same(t, want)
		})
	})
}

// text returns a new text message from user in a chat.
func text(chatID, userID, keyVersion int64, clientID, body string, at time.Time) chat.NewMessage {
	return chat.NewMessage{ChatID: chatID, UserID: userID, Kind: chat.MessageText, KeyVersion: keyVersion,
		Body: []byte(body), ClientID: clientID, CreatedAt: at}
}

// MustInsert inserts a group and fails the test on error.
func MustInsert(tb testing.TB, db *store.DB, msgs ...chat.NewMessage) []chat.Inserted {
	tb.Helper()
	out, err := db.InsertMessages(context.Background(), msgs)
	if err != nil {
		tb.Fatalf("InsertMessages: %v", err)
	}
	if len(out) != len(msgs) {
		tb.Fatalf("InsertMessages returned %d results for %d messages", len(out), len(msgs))
	}
	return out
}

// MustHistory returns every message of a chat, oldest first.
func MustHistory(tb testing.TB, db *store.DB, chatID int64) []chat.Message {
	tb.Helper()
	msgs, err := db.MessagesAfter(context.Background(), chatID, 0, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	return msgs
}

func ids(msgs []chat.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func TestInsertMessages(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")

		first := MustInsert(t, db,
			text(global.ID, alice.ID, kv, "a-1", "one", base),
			text(global.ID, bob.ID, kv, "b-1", "two", base.Add(time.Millisecond)),
			text(global.ID, alice.ID, kv, "a-2", "three", base.Add(2*time.Millisecond)),
		)
		for i, ins := range first {
			if !ins.Created || ins.ChatID != global.ID || !ins.CreatedAt.Equal(base.Add(time.Duration(i)*time.Millisecond)) {
				t.Errorf("result %d = %+v", i, ins)
			}
			if i > 0 && ins.ID <= first[i-1].ID {
				t.Errorf("ids out of order: %d after %d", ins.ID, first[i-1].ID)
			}
		}
		history := MustHistory(t, db, global.ID)
		if got := ids(history); !slices.Equal(got, []int64{first[0].ID, first[1].ID, first[2].ID}) {
			t.Fatalf("stored ids %v", got)
		}
		m := history[1]
		if m.ChatID != global.ID || m.ChatName != chat.GlobalChatName || m.UserID != bob.ID || m.Username != "bob" ||
			m.Kind != chat.MessageText || m.KeyVersion != kv || string(m.Body) != "two" || m.ClientID != "b-1" ||
			!m.CreatedAt.Equal(base.Add(time.Millisecond)) || !m.EditedAt.IsZero() || !m.DeletedAt.IsZero() {
			t.Fatalf("stored message = %+v", m)
		}

		t.Run("resend returns the stored message", func(t *testing.T) {
			again := MustInsert(t, db, text(global.ID, alice.ID, kv, "a-2", "three, edited on resend", base.Add(time.Hour)))
			want := chat.Inserted{ID: first[2].ID, ChatID: global.ID, Created: false, CreatedAt: first[2].CreatedAt}
			if again[0].ID != want.ID || again[0].Created || again[0].ChatID != want.ChatID || !again[0].CreatedAt.Equal(want.CreatedAt) {
				t.Fatalf("resend = %+v, want %+v", again[0], want)
			}
			history := MustHistory(t, db, global.ID)
			if len(history) != 3 || string(history[2].Body) != "three" {
				t.Fatalf("after resend the chat holds %d messages, last %q", len(history), history[len(history)-1].Body)
			}
		})
		t.Run("duplicate inside one group", func(t *testing.T) {
			got := MustInsert(t, db,
				text(global.ID, alice.ID, kv, "a-3", "four", base),
				text(global.ID, alice.ID, kv, "a-3", "four again", base),
				text(global.ID, bob.ID, kv, "a-3", "bob may use the same client id", base),
			)
			if !got[0].Created || got[1].Created || got[1].ID != got[0].ID || !got[2].Created || got[2].ID == got[0].ID {
				t.Fatalf("group results %+v", got)
			}
			if n := len(MustHistory(t, db, global.ID)); n != 5 {
				t.Fatalf("chat holds %d messages, want 5", n)
			}
		})
		t.Run("a failing group stores nothing", func(t *testing.T) {
			before := MustHistory(t, db, global.ID)
			_, err := db.InsertMessages(ctx, []chat.NewMessage{
				text(global.ID, alice.ID, kv, "a-4", "would be five", base),
				text(global.ID, alice.ID, kv+1000, "a-5", "names a key version that does not exist", base),
			})
			if err == nil {
				t.Fatal("a message with an unknown key version was stored")
			}
			if after := MustHistory(t, db, global.ID); len(after) != len(before) {
				t.Fatalf("half a group was committed: %d messages, had %d", len(after), len(before))
			}
			// The client id of the refused group is still free.
			if got := MustInsert(t, db, text(global.ID, alice.ID, kv, "a-4", "five", base)); !got[0].Created {
				t.Fatalf("client id of a rolled-back group is taken: %+v", got[0])
			}
		})
		t.Run("large groups", func(t *testing.T) {
			// 600 rows: three INSERT statements, then the same with one
			// duplicate in the middle (the row-at-a-time path), and on MySQL
			// the path that reads the ids back instead of counting them.
			check := func(t *testing.T, prefix string, dupAt int) {
				t.Helper()
				msgs := make([]chat.NewMessage, 600)
				for i := range msgs {
					msgs[i] = text(global.ID, bob.ID, kv, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("body %d", i), base)
				}
				if dupAt >= 0 {
					msgs[dupAt].ClientID = "b-1" // stored at the start of the test
				}
				got := MustInsert(t, db, msgs...)
				stored, err := db.MessagesByIDs(ctx, global.ID, func() []int64 {
					out := make([]int64, len(got))
					for i, g := range got {
						out[i] = g.ID
					}
					return out
				}())
				if err != nil {
					t.Fatal(err)
				}
				byID := make(map[int64]chat.Message, len(stored))
				for _, m := range stored {
					byID[m.ID] = m
				}
				for i, g := range got {
					if i == dupAt {
						if g.Created || g.ID != first[1].ID {
							t.Fatalf("duplicate at %d = %+v, want the stored b-1 (%d)", i, g, first[1].ID)
						}
						continue
					}
					if m := byID[g.ID]; !g.Created || m.ClientID != msgs[i].ClientID || string(m.Body) != string(msgs[i].Body) {
						t.Fatalf("row %d: result %+v holds %q/%q, want %q", i, g, m.ClientID, m.Body, msgs[i].ClientID)
					}
					if i > 0 && i-1 != dupAt && g.ID <= got[i-1].ID {
						t.Fatalf("ids out of order at %d: %d after %d", i, g.ID, got[i-1].ID)
					}
				}
			}
			check(t, "big", -1)
			check(t, "bigdup", 300)
			if opts.Driver == store.MySQL {
				old := store.SetConsecutiveIDs(db, false)
				defer store.SetConsecutiveIDs(db, old)
				check(t, "readback", -1)
			}
		})
		t.Run("bodies of every byte, in one batch and past its size", func(t *testing.T) {
			// Quotes, backslashes, NUL, a lone ? and -- or /* that could end
			// or comment out a statement, and every other byte: stored as
			// sent, whether the group goes as one request (small) or a
			// statement at a time (over a megabyte of bodies).
			tricky := []byte("'; DROP TABLE messages; -- \\' \x00 ? /* \"\x00\n\r\x1a\\")
			all := make([]byte, 256)
			for i := range all {
				all[i] = byte(i)
			}
			for _, size := range []int{1, 40} {
				msgs := make([]chat.NewMessage, size)
				for i := range msgs {
					body := append(append([]byte{}, tricky...), all...)
					if size > 1 {
						body = append(body, bytes.Repeat(all, 128)...) // 32 KiB each, 1.3 MiB in all
					}
					msgs[i] = chat.NewMessage{ChatID: global.ID, UserID: alice.ID, Kind: chat.MessageText, KeyVersion: kv,
						Body: body, ClientID: fmt.Sprintf("bytes-%d-%d", size, i), CreatedAt: base}
				}
				got := MustInsert(t, db, msgs...)
				ids := make([]int64, len(got))
				for i, g := range got {
					ids[i] = g.ID
				}
				stored, err := db.MessagesByIDs(ctx, global.ID, ids)
				if err != nil || len(stored) != size {
					t.Fatalf("%d messages: read back %d, %v", size, len(stored), err)
				}
				for _, m := range stored {
					if !bytes.Equal(m.Body, msgs[0].Body) {
						t.Fatalf("%d messages: a body came back as %q", size, m.Body[:min(len(m.Body), 80)])
					}
				}
			}
		})
		t.Run("empty group", func(t *testing.T) {
			if got, err := db.InsertMessages(ctx, nil); err != nil || len(got) != 0 {
				t.Fatalf("InsertMessages(nil) = %v, %v", got, err)
			}
		})
	})
}

func TestMessagePages(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice := MustCreateUser(t, db, "alice")
		other := MustGroupChat(t, opts, "ops", alice.ID)

		// Seven global messages, interleaved with messages of another chat
		// that no page of the global chat may show.
		var id []int64
		for i := range 7 {
			ins := MustInsert(t, db,
				text(global.ID, alice.ID, kv, fmt.Sprintf("g%d", i), fmt.Sprintf("global %d", i), base),
				text(other, alice.ID, kv, fmt.Sprintf("o%d", i), "ops", base),
			)
			id = append(id, ins[0].ID)
		}

		befores := []struct {
			name   string
			before int64
			limit  int
			want   []int64
			more   bool
		}{
			{"newest page", 0, 3, id[4:7], true},
			{"negative before means newest", -1, 3, id[4:7], true},
			{"next older page", id[4], 3, id[1:4], true},
			{"exactly the rest", id[3], 3, id[0:3], false},
			{"fewer than a page left", id[2], 3, id[0:2], false},
			{"nothing older", id[0], 3, nil, false},
			{"whole chat in one page", 0, 7, id, false},
			{"one short of the whole chat", 0, 6, id[1:7], true},
			{"before an id of another chat", id[6] + 1, 2, id[5:7], true},
		}
		for _, tt := range befores {
			t.Run("before/"+tt.name, func(t *testing.T) {
				msgs, more, err := db.MessagesBefore(ctx, global.ID, tt.before, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(msgs); !slices.Equal(got, tt.want) || more != tt.more {
					t.Fatalf("MessagesBefore(%d, %d) = %v, more %v; want %v, more %v", tt.before, tt.limit, got, more, tt.want, tt.more)
				}
				for _, m := range msgs {
					if m.ChatID != global.ID {
						t.Fatalf("page of the global chat holds %+v", m)
					}
				}
			})
		}

		afters := []struct {
			name  string
			after int64
			limit int
			want  []int64
		}{
			{"from the start", 0, 3, id[0:3]},
			{"next page", id[2], 3, id[3:6]},
			{"the last one", id[5], 3, id[6:7]},
			{"caught up", id[6], 3, nil},
			{"all", 0, 100, id},
		}
		for _, tt := range afters {
			t.Run("after/"+tt.name, func(t *testing.T) {
				msgs, err := db.MessagesAfter(ctx, global.ID, tt.after, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(msgs); !slices.Equal(got, tt.want) {
					t.Fatalf("MessagesAfter(%d, %d) = %v; want %v", tt.after, tt.limit, got, tt.want)
				}
			})
		}
	})
}

// TestMessagesWithIDs reads rows of several chats in one call, in id
// order, leaving out ids that do not exist and reading repeats once.
func TestMessagesWithIDs(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice := MustCreateUser(t, db, "alice")
		other := MustGroupChat(t, opts, "ops", alice.ID)
		ins := MustInsert(t, db,
			text(global.ID, alice.ID, kv, "w1", "global one", base),
			text(other, alice.ID, kv, "w2", "ops one", base),
			text(global.ID, alice.ID, kv, "w3", "global two", base),
		)
		tests := []struct {
			name string
			ask  []int64
			want []int64
		}{
			{"none", nil, nil},
			{"two chats", []int64{ins[2].ID, ins[1].ID}, []int64{ins[1].ID, ins[2].ID}},
			{"repeats and a missing id", []int64{ins[0].ID, ins[0].ID, ins[2].ID + 100}, []int64{ins[0].ID}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				msgs, err := db.MessagesWithIDs(ctx, tt.ask)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(msgs); !slices.Equal(got, tt.want) {
					t.Fatalf("MessagesWithIDs(%v) = %v; want %v", tt.ask, got, tt.want)
				}
			})
		}
		msgs, err := db.MessagesWithIDs(ctx, []int64{ins[1].ID})
		if err != nil || len(msgs) != 1 || msgs[0].ChatID != other || msgs[0].Username != "alice" || string(msgs[0].Body) != "ops one" {
			t.Fatalf("MessagesWithIDs(ops one) = %+v, %v", msgs, err)
		}
	})
}

func TestMembership(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		ops := MustGroupChat(t, opts, "ops", alice.ID)

		members := []struct {
			name   string
			chatID int64
			userID int64
			want   bool
		}{
			{"alice in global", global.ID, alice.ID, true},
			{"bob in global", global.ID, bob.ID, true},
			{"alice in ops", ops, alice.ID, true},
			{"bob not in ops", ops, bob.ID, false},
			{"unknown user", global.ID, 99999, false},
			{"unknown chat", 99999, alice.ID, false},
		}
		for _, tt := range members {
			t.Run(tt.name, func(t *testing.T) {
				if got, err := db.IsMember(ctx, tt.chatID, tt.userID); err != nil || got != tt.want {
					t.Fatalf("IsMember = %v, %v; want %v", got, err, tt.want)
				}
			})
		}
		chats := []struct {
			name   string
			userID int64
			want   []int64
		}{
			{"alice", alice.ID, []int64{global.ID, ops}},
			{"bob", bob.ID, []int64{global.ID}},
			{"nobody", 99999, nil},
		}
		for _, tt := range chats {
			t.Run("chats of "+tt.name, func(t *testing.T) {
				if got, err := db.UserChatIDs(ctx, tt.userID); err != nil || !slices.Equal(got, tt.want) {
					t.Fatalf("UserChatIDs = %v, %v; want %v", got, err, tt.want)
				}
			})
		}
	})
}

func TestRepliesAndEvents(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		other := MustGroupChat(t, opts, "ops", alice.ID)

		// m0..m4, then an edit of m0 and a delete of m4: the two newest rows
		// of the chat are events, and a row of another chat sits between.
		var m []int64
		for i := range 5 {
			nm := text(global.ID, alice.ID, kv, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i), base)
			if i == 3 {
				nm.UserID, nm.ReplyTo = bob.ID, m[1]
			}
			m = append(m, MustInsert(t, db, nm)[0].ID)
		}
		elsewhere := MustInsert(t, db, text(other, alice.ID, kv, "o1", "ops", base))[0].ID
		edited, err := db.EditMessage(ctx, chat.Edit{ChatID: global.ID, UserID: alice.ID, TargetID: m[0], KeyVersion: kv, Body: []byte("message 0, edited"),
			EventKeyVersion: kv, EventClientID: "edit-m0", At: base.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		deleted, err := db.EditMessage(ctx, chat.Edit{ChatID: global.ID, UserID: alice.ID, TargetID: m[4], Delete: true,
			EventKeyVersion: kv, EventClientID: "delete-m4", At: base.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		editEvent, deleteEvent := edited.Event.ID, deleted.Event.ID

		t.Run("history holds messages only", func(t *testing.T) {
			pages := []struct {
				name   string
				before int64
				limit  int
				want   []int64
				more   bool
			}{
				{"newest page is full of messages", 0, 3, m[2:5], true},
				{"the rest", m[2], 3, m[0:2], false},
				{"exactly the whole chat", 0, 5, m, false},
				{"before an event", deleteEvent, 2, m[3:5], true},
				{"one page of everything", 0, 100, m, false},
			}
			for _, tt := range pages {
				t.Run(tt.name, func(t *testing.T) {
					msgs, more, err := db.MessagesBefore(ctx, global.ID, tt.before, tt.limit)
					if err != nil {
						t.Fatal(err)
					}
					if got := ids(msgs); !slices.Equal(got, tt.want) || more != tt.more {
						t.Fatalf("MessagesBefore(%d, %d) = %v, more %v; want %v, more %v", tt.before, tt.limit, got, more, tt.want, tt.more)
					}
				})
			}
			msgs, _, err := db.MessagesBefore(ctx, global.ID, 0, 5)
			if err != nil {
				t.Fatal(err)
			}
			// Targets show as they are now.
			if string(msgs[0].Body) != "message 0, edited" || msgs[0].EditedAt.IsZero() || len(msgs[4].Body) != 0 || msgs[4].DeletedAt.IsZero() {
				t.Fatalf("history shows %+v and %+v", msgs[0], msgs[4])
			}
			if msgs[3].ReplyTo != m[1] || msgs[3].UserID != bob.ID || msgs[2].ReplyTo != 0 {
				t.Fatalf("replies: %+v answers %d, %+v answers %d", msgs[3], msgs[3].ReplyTo, msgs[2], msgs[2].ReplyTo)
			}
		})
		t.Run("sync replays events", func(t *testing.T) {
			msgs, err := db.MessagesAfter(ctx, global.ID, m[3], 100)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(msgs), []int64{m[4], editEvent, deleteEvent}; !slices.Equal(got, want) {
				t.Fatalf("MessagesAfter = %v, want %v", got, want)
			}
			if msgs[1].Kind != chat.MessageEdit || msgs[1].TargetID != m[0] || msgs[2].Kind != chat.MessageDelete || msgs[2].TargetID != m[4] || msgs[0].TargetID != 0 {
				t.Fatalf("events = %+v", msgs[1:])
			}
			msgs, err = db.MessagesAfter(ctx, global.ID, m[4], 1)
			if err != nil || !slices.Equal(ids(msgs), []int64{editEvent}) {
				t.Fatalf("MessagesAfter one = %v, %v", ids(msgs), err)
			}
		})
		t.Run("by ids", func(t *testing.T) {
			tests := []struct {
				name string
				ids  []int64
				want []int64
			}{
				{"none", nil, nil},
				{"in order, whatever the order asked", []int64{m[3], m[0], editEvent}, []int64{m[0], m[3], editEvent}},
				{"repeats once", []int64{m[1], m[1]}, []int64{m[1]}},
				{"not of this chat", []int64{elsewhere, m[2]}, []int64{m[2]}},
				{"missing", []int64{99999, -1, 0}, nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					msgs, err := db.MessagesByIDs(ctx, global.ID, tt.ids)
					if err != nil {
						t.Fatal(err)
					}
					if got := ids(msgs); !slices.Equal(got, tt.want) {
						t.Fatalf("MessagesByIDs(%v) = %v, want %v", tt.ids, got, tt.want)
					}
				})
			}
			msgs, err := db.MessagesByIDs(ctx, global.ID, []int64{m[3]})
			if err != nil || len(msgs) != 1 || msgs[0].ReplyTo != m[1] || msgs[0].Username != "bob" || msgs[0].ChatName != chat.GlobalChatName {
				t.Fatalf("MessagesByIDs = %+v, %v", msgs, err)
			}
		})
		t.Run("many ids", func(t *testing.T) {
			// More than one batch of ids.
			var batch []chat.NewMessage
			for i := range 1200 {
				batch = append(batch, text(other, alice.ID, kv, fmt.Sprintf("many-%d", i), "x", base))
			}
			var want []int64
			for _, ins := range MustInsert(t, db, batch...) {
				want = append(want, ins.ID)
			}
			asked := slices.Clone(want)
			slices.Reverse(asked)
			msgs, err := db.MessagesByIDs(ctx, other, append(asked, m...))
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(msgs); !slices.Equal(got, want) {
				t.Fatalf("MessagesByIDs returned %d rows, want the %d of the chat in order", len(got), len(want))
			}
		})
	})
}

// TestSQLiteCheckpoints: the write-ahead log is copied into the database
// file in the background (commits do not checkpoint), and Close folds in
// the rest and empties the log.
func TestSQLiteCheckpoints(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "chat.db")
	opts := store.Options{Driver: store.SQLite, SQLitePath: path}
	db, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	global := MustGlobal(t, db)
	kv := MustKeyVersion(t, db)
	alice := MustCreateUser(t, db, "alice")
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	before := size(path)
	body := strings.Repeat("x", 1000)
	for i := range 20 {
		msgs := make([]chat.NewMessage, 100)
		for j := range msgs {
			msgs[j] = text(global.ID, alice.ID, kv, fmt.Sprintf("c-%d-%d", i, j), body, base)
		}
		MustInsert(t, db, msgs...)
	}
	// About 2 MB of rows went to the log; a checkpoint copies them into the
	// database file within a few ticks.
	deadline := time.Now().Add(30 * time.Second)
	for size(path) < before+1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d), log %d bytes: no checkpoint ran", size(path), before, size(path+"-wal"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := size(path + "-wal"); n != 0 {
		t.Fatalf("log holds %d bytes after Close", n)
	}
	// Everything is in the file.
	db2 := MustOpen(t, opts)
	if n := len(MustHistory(t, db2, global.ID)); n != 1000 {
		t.Fatalf("reopened database holds %d messages, want the first 1000 of a page", n)
	}
}

// TestPagePlans: on MySQL/MariaDB a page of history is read from messages
// first, by the (chat_id, id) index, whatever the optimiser would guess;
// users and chats are looked up by primary key for the rows found.
func TestPagePlans(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		if opts.Driver != store.MySQL {
			t.Skip("SQLite plans these by the index already; its history benchmark checks the time")
		}
		db := MustOpen(t, opts)
		raw := MustRawDB(t, opts)
		before, after := store.PageQueries(db)
		for name, q := range map[string]string{"before": before, "after": after} {
			rows, err := raw.Query("EXPLAIN "+q, 1, 1000, 51)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			var plan []map[string]string
			for rows.Next() {
				vals := make([]sql.NullString, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				row := map[string]string{}
				for i, c := range cols {
					row[c] = vals[i].String
				}
				plan = append(plan, row)
			}
			rows.Close()
			if len(plan) != 3 || plan[0]["table"] != "m" || plan[0]["key"] != "messages_chat_id" ||
				plan[1]["key"] != "PRIMARY" || plan[2]["key"] != "PRIMARY" {
				t.Fatalf("%s: plan %v", name, plan)
			}
		}
	})
}

// TestSQLiteWALStaysBounded: passive checkpoints copy the log back but
// never empty it, so under a writer that never pauses the file would grow
// without end; past the restart size the checkpointer truncates it.
func TestSQLiteWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	db := MustOpen(t, store.Options{Driver: store.SQLite, SQLitePath: path})
	global := MustGlobal(t, db)
	kv := MustKeyVersion(t, db)
	alice := MustCreateUser(t, db, "alice")
	body := strings.Repeat("y", 2000)
	for i := range 20 { // about 4 MB of rows
		msgs := make([]chat.NewMessage, 100)
		for j := range msgs {
			msgs[j] = text(global.ID, alice.ID, kv, fmt.Sprintf("w-%d-%d", i, j), body, base)
		}
		MustInsert(t, db, msgs...)
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if n := walSize(); n < 2<<20 {
		t.Fatalf("the log holds only %d bytes after 4 MB of rows", n)
	}
	// A passive checkpoint would leave the file as it is; with the restart
	// size lowered below it, the next one truncates it, while the database
	// stays open.
	old := store.SetWALRestartFrames(256) // 1 MiB
	defer store.SetWALRestartFrames(old)
	deadline := time.Now().Add(20 * time.Second)
	for walSize() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the log still holds %d bytes: it was never started over", walSize())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(MustHistory(t, db, global.ID)); n != 1000 {
		t.Fatalf("after the restart the chat reads %d messages of its first page, want 1000", n)
	}
}

// On SQLite, message groups commit on a connection of their own: a group
// commits while every pooled connection is taken (by readers, say), and
// the held connection is replaced when it goes away.
func TestSQLiteGroupsHaveTheirOwnConnection(t *testing.T) {
	t.Parallel()
	opts := store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(t.TempDir(), "chat.db")}
	db := MustOpen(t, opts)
	global := MustGlobal(t, db)
	kv := MustKeyVersion(t, db)
	alice := MustCreateUser(t, db, "alice")
	group := func(tag string) []chat.NewMessage {
		return []chat.NewMessage{
			text(global.ID, alice.ID, kv, tag+"-1", "one", base),
			text(global.ID, alice.ID, kv, tag+"-2", "two", base),
		}
	}
	MustInsert(t, db, group("a")...) // opens the group connection
	// The committer's connection has the large page cache; the pool's
	// readers the small one.
	if w, p, err := store.CacheSizes(context.Background(), db); err != nil || w != -16384 || p != -2048 {
		t.Fatalf("page cache sizes: committer %d, pooled %d, %v; want -16384 and -2048 (KiB)", w, p, err)
	}
	release := store.HoldFreeConns(t, db)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if ins, err := db.InsertMessages(ctx, group("b")); err != nil || len(ins) != 2 || !ins[0].Created {
		t.Fatalf("group with the pool taken: %+v, %v", ins, err)
	}
	if ins, err := db.InsertMessages(ctx, group("c")[:1]); err != nil || !ins[0].Created {
		t.Fatalf("single message with the pool taken: %+v, %v", ins, err)
	}
	cancel()
	release()

	store.CloseWriter(db)
	ins := MustInsert(t, db, group("d")...)
	if !ins[0].Created || !ins[1].Created {
		t.Fatalf("after the connection went away: %+v", ins)
	}
	if w, _, err := store.CacheSizes(context.Background(), db); err != nil || w != -16384 {
		t.Fatalf("the replaced committer connection's page cache: %d, %v; want -16384 (KiB)", w, err)
	}
	if got := len(MustHistory(t, db, global.ID)); got != 7 {
		t.Fatalf("history holds %d messages, want 7", got)
	}
}

// Under steady writes, with readers always in the log, the log starts
// over without holding the writer back. (A TRUNCATE checkpoint did it
// before by waiting for a moment with no reader, holding every writer back
// meanwhile: with readers always there, groups stalled for seconds.)
func TestSQLiteLogStartsOverUnderLoad(t *testing.T) {
	opts := store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(t.TempDir(), "chat.db")}
	db := MustOpen(t, opts)
	global := MustGlobal(t, db)
	kv := MustKeyVersion(t, db)
	alice := MustCreateUser(t, db, "alice")
	old := store.SetWALRestartFrames(256) // 1 MiB
	defer store.SetWALRestartFrames(old)
	raw := MustRawDB(t, opts)
	raw.SetMaxOpenConns(8)

	// Readers that never stop: short read transactions back to back, as
	// thousands of clients make.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				raw.QueryRow(`SELECT COUNT(*) FROM (SELECT id FROM messages ORDER BY id DESC LIMIT 20)`).Scan(&n)
			}
		})
	}
	defer func() { close(stop); readers.Wait() }()

	body := strings.Repeat("z", 2000)
	n := 0
	group := func() {
		t.Helper()
		msgs := make([]chat.NewMessage, 50)
		for j := range msgs {
			n++
			msgs[j] = text(global.ID, alice.ID, kv, fmt.Sprintf("l-%d", n), body, base)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := db.InsertMessages(ctx, msgs); err != nil {
			t.Fatalf("group %d, with readers in the log: %v", n/50, err)
		}
	}
	// The log's header counts its restarts (the checkpoint sequence
	// number, bytes 12-15); reading it changes nothing, as a checkpoint
	// from here would.
	restarts := func() uint32 {
		t.Helper()
		f, err := os.Open(opts.SQLitePath + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var hdr [16]byte
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint32(hdr[12:])
	}
	group()
	first := restarts()
	deadline := time.Now().Add(30 * time.Second)
	for restarts() < first+2 {
		group() // back to back: never idle long enough for the background truncate
		if time.Now().After(deadline) {
			t.Fatalf("the log started over %d times in 30 s of groups", restarts()-first)
		}
	}
	if got := len(MustHistory(t, db, global.ID)); got == 0 {
		t.Fatal("no history after the restarts")
	}
}

// TestInsertMessagesOnlyFromMembers: a message commits only while its
// sender is a member of its chat, as the database says under the chat's
// lock, whatever a node cached: a member removed cannot send afterwards,
// alone or in a group with others' messages.
func TestInsertMessagesOnlyFromMembers(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		group := MustGroupChat(t, opts, "g-members", alice.ID, bob.ID)
		if _, err := db.IsMember(ctx, group, bob.ID); err != nil { // warms the cache
			t.Fatal(err)
		}
		if _, err := db.InsertMessages(ctx, []chat.NewMessage{text(group, bob.ID, kv, "b-1", "hello", base)}); err != nil {
			t.Fatalf("a member's message: %v", err)
		}
		MustExec(t, MustRawDB(t, opts), `DELETE FROM chat_members WHERE chat_id = ? AND user_id = ?`, group, bob.ID) // another node's removal
		_, err := db.InsertMessages(ctx, []chat.NewMessage{text(group, bob.ID, kv, "b-2", "still here?", base)})
		wantCode(t, err, chat.EForbidden)
		_, err = db.InsertMessages(ctx, []chat.NewMessage{
			text(group, alice.ID, kv, "a-1", "hi", base), text(group, bob.ID, kv, "b-3", "me too", base),
		})
		wantCode(t, err, chat.EForbidden)
		if _, err := db.InsertMessages(ctx, []chat.NewMessage{text(group, alice.ID, kv, "a-2", "just me", base)}); err != nil {
			t.Fatalf("the remaining member's message: %v", err)
		}
		// Each refused group, and one with a duplicate, rolled back on its
		// connection: none still holds the chat's lock (the groups' pool
		// has 4 connections, so 8 refusals reach each).
		for i := range 8 {
			_, err := db.InsertMessages(ctx, []chat.NewMessage{text(group, bob.ID, kv, fmt.Sprintf("b-x%d", i), "again", base)})
			wantCode(t, err, chat.EForbidden)
		}
		if got, err := db.InsertMessages(ctx, []chat.NewMessage{
			text(group, alice.ID, kv, "a-2", "just me", base), text(group, alice.ID, kv, "a-3", "and me", base),
		}); err != nil || got[0].Created || !got[1].Created {
			t.Fatalf("a group with a duplicate: %+v, %v", got, err)
		}
		MustNoChatLock(t, opts, group)
	})
}

// MustNoChatLock fails the test when a connection holds the lock on a
// chat's row (MySQL; on SQLite a transaction left open would hold the
// writer, which every later test would find).
func MustNoChatLock(t *testing.T, opts store.Options, chatID int64) {
	t.Helper()
	if opts.Driver != store.MySQL {
		return
	}
	ctx := context.Background()
	conn, err := MustRawDB(t, opts).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = 1`); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT id FROM chats WHERE id = ? FOR UPDATE`, chatID); err != nil {
		t.Fatalf("the chat's row is still locked: %v", err)
	}
}
