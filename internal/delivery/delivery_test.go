package delivery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/testutil/servicetest"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
)

const maxBytes = 100

func MustService(tb testing.TB) (*delivery.Service, *servicetest.World) {
	tb.Helper()
	return MustServiceWith(tb, nil)
}

// MustServiceWith is MustService with a clock.
func MustServiceWith(tb testing.TB, now func() time.Time) (*delivery.Service, *servicetest.World) {
	tb.Helper()
	w := servicetest.MustWorld(tb)
	s := delivery.New(delivery.Options{
		Store: w.Store, Ring: w.Ring, Sequencer: w.Sequencer, Broker: w.Broker, Log: w.Log, Now: now,
		MaxMessageBytes: maxBytes, CommitTimeout: 5 * time.Second,
	})
	return s, w
}

// outcome is what SendAsync's callback reported.
type outcome struct {
	sent delivery.Sent
	err  error
}

// sendAsync queues a message and returns where its outcome will arrive.
func sendAsync(tb testing.TB, s *delivery.Service, id chat.Identity, req delivery.SendRequest) <-chan outcome {
	tb.Helper()
	done := make(chan outcome, 1)
	if err := s.SendAsync(context.Background(), id, req, func(sent delivery.Sent, err error) { done <- outcome{sent, err} }); err != nil {
		done <- outcome{err: err}
	}
	return done
}

func send(tb testing.TB, s *delivery.Service, id chat.Identity, req delivery.SendRequest) (delivery.Sent, error) {
	tb.Helper()
	select {
	case o := <-sendAsync(tb, s, id, req):
		return o.sent, o.err
	case <-time.After(30 * time.Second):
		tb.Fatal("no outcome for a send")
		return delivery.Sent{}, nil
	}
}

func MustSend(tb testing.TB, s *delivery.Service, id chat.Identity, req delivery.SendRequest) chat.Message {
	tb.Helper()
	sent, err := send(tb, s, id, req)
	if err != nil || !sent.Created {
		tb.Fatalf("send %q: %+v, %v", req.Text, sent, err)
	}
	return sent.Message
}

func TestSendCommitsThenPublishes(t *testing.T) {
	s, w := MustService(t)
	alice := w.MustUser(t, "alice")
	m := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "hello", ClientID: "c-1"})
	if m.ID <= 0 || m.ChatName != chat.GlobalChatName || m.Username != "alice" || m.Text != "hello" || m.ClientID != "c-1" {
		t.Fatalf("sent %+v", m)
	}
	frames := w.Broker.Frames(t)
	if len(frames) != 1 || frames[0]["type"] != "text" || frames[0]["text"] != "hello" || frames[0]["id"] != float64(m.ID) {
		t.Fatalf("published %v", frames)
	}
	if ev := w.Broker.Events()[0]; ev.ChatID != w.Global.ID || ev.MessageID != m.ID {
		t.Fatalf("event %+v", ev)
	}

	// A resend of the client id stores nothing and publishes nothing.
	again, err := send(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "hello", ClientID: "c-1"})
	if err != nil || again.Created || again.Message.ID != m.ID {
		t.Fatalf("resend: %+v, %v", again, err)
	}
	if n := len(w.Broker.Events()); n != 1 {
		t.Fatalf("%d events after a resend", n)
	}
	// Without a client id the server makes one.
	anon := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "no id"})
	if !strings.HasPrefix(anon.ClientID, "srv-") {
		t.Fatalf("made-up client id %q", anon.ClientID)
	}
	page, more, err := s.History(context.Background(), w.Global, 0, 10)
	if err != nil || more || len(page) != 2 || page[0].Text != "hello" || page[1].Text != "no id" {
		t.Fatalf("history %+v, %v, %v", page, more, err)
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	s, w := MustService(t)
	alice := w.MustUser(t, "alice")
	tests := []struct {
		name string
		req  delivery.SendRequest
		code string
	}{
		{"too large", delivery.SendRequest{Text: strings.Repeat("x", maxBytes+1)}, chat.ETooLarge},
		{"not UTF-8", delivery.SendRequest{Text: "bad \xff"}, chat.EInvalid},
		{"blank", delivery.SendRequest{Text: " \n\t "}, chat.EInvalid},
		{"a control character", delivery.SendRequest{Text: "bell \a"}, chat.EInvalid},
		{"a bad client id", delivery.SendRequest{Text: "hi", ClientID: "no spaces"}, chat.EInvalid},
		{"a reply to nothing", delivery.SendRequest{Text: "hi", ReplyTo: 424242}, chat.EInvalid},
		{"a file that is not a file URL", delivery.SendRequest{Kind: chat.MessageFile, Text: "/etc/passwd"}, chat.EInvalid},
		{"a file never uploaded", delivery.SendRequest{Kind: chat.MessageFile, Text: "/file/00112233445566778899aabbccddeeff"}, chat.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Chat = w.Global
			_, err := send(t, s, alice, tt.req)
			if chat.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
	if n := len(w.Broker.Events()); n != 0 {
		t.Fatalf("%d events published for refused messages", n)
	}
	if page, _, _ := s.History(context.Background(), w.Global, 0, 10); len(page) != 0 {
		t.Fatalf("refused messages stored: %+v", page)
	}
}

// hold is a Work that keeps the committer busy until released, so that the
// messages sent meanwhile queue up and commit as one group.
type hold struct{ entered, release chan struct{} }

func (h hold) Commit(context.Context) sequencer.Publication {
	close(h.entered)
	<-h.release
	return nil
}

// One message that cannot be stored (its chat does not exist) fails its own
// sender only; the rest of its group commits and publishes in order.
func TestFailedRowFailsOnlyItsSender(t *testing.T) {
	s, w := MustService(t)
	alice := w.MustUser(t, "alice")
	h := hold{make(chan struct{}), make(chan struct{})}
	if err := w.Sequencer.Submit(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	<-h.entered
	ghost := chat.Chat{ID: 987654, Name: "ghost", Kind: chat.KindGroup}
	var pending []<-chan outcome
	for i, c := range []chat.Chat{w.Global, w.Global, ghost, w.Global, w.Global} {
		pending = append(pending, sendAsync(t, s, alice, delivery.SendRequest{Chat: c, Text: "m", ClientID: "c-" + string(rune('a'+i))}))
	}
	close(h.release)
	var ids []int64
	for i, p := range pending {
		o := <-p
		if i == 2 {
			if o.err == nil {
				t.Fatalf("the message to a missing chat was stored: %+v", o.sent)
			}
			continue
		}
		if o.err != nil || !o.sent.Created {
			t.Fatalf("message %d: %+v, %v", i, o.sent, o.err)
		}
		ids = append(ids, o.sent.Message.ID)
	}
	var published []int64
	for _, ev := range w.Broker.Events() {
		published = append(published, ev.MessageID)
	}
	if len(published) != 4 || published[0] != ids[0] || published[3] != ids[3] {
		t.Fatalf("published %v, acked %v", published, ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids out of order: %v", ids)
		}
	}
}

func TestChangeEditsAndDeletesOwnMessages(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice, bob := w.MustUser(t, "alice"), w.MustUser(t, "bob")
	m := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "frist", ClientID: "m-1"})
	w.Broker.Reset()

	edit := delivery.ChangeRequest{Chat: w.Global, MessageID: m.ID, Text: "first", ClientID: "e-1"}
	got, err := s.Change(ctx, alice, edit)
	if err != nil || !got.Created || got.Event.Kind != chat.MessageEdit || got.Event.TargetID != m.ID || got.Event.Target.Text != "first" {
		t.Fatalf("edit: %+v, %v", got, err)
	}
	frames := w.Broker.Frames(t)
	if len(frames) != 1 || frames[0]["type"] != "edit" || frames[0]["message_id"] != float64(m.ID) || frames[0]["text"] != "first" {
		t.Fatalf("published %v", frames)
	}
	// A retry changes nothing and publishes nothing.
	if again, err := s.Change(ctx, alice, edit); err != nil || again.Created || again.Event.ID != got.Event.ID {
		t.Fatalf("retried edit: %+v, %v", again, err)
	}
	if n := len(w.Broker.Events()); n != 1 {
		t.Fatalf("%d events after a retried edit", n)
	}

	for _, tt := range []struct {
		name string
		who  chat.Identity
		req  delivery.ChangeRequest
		code string
	}{
		{"someone else's message", bob, delivery.ChangeRequest{Chat: w.Global, MessageID: m.ID, Text: "mine now"}, chat.EForbidden},
		{"a message that does not exist", alice, delivery.ChangeRequest{Chat: w.Global, MessageID: m.ID + 100, Text: "x"}, chat.ENotFound},
		{"an edit event itself", alice, delivery.ChangeRequest{Chat: w.Global, MessageID: got.Event.ID, Text: "x"}, chat.ENotFound},
		{"no message id", alice, delivery.ChangeRequest{Chat: w.Global, Text: "x"}, chat.EInvalid},
		{"a text too large", alice, delivery.ChangeRequest{Chat: w.Global, MessageID: m.ID, Text: strings.Repeat("y", maxBytes+1)}, chat.ETooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Change(ctx, tt.who, tt.req); chat.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}

	del, err := s.Change(ctx, alice, delivery.ChangeRequest{Chat: w.Global, MessageID: m.ID, Delete: true, ClientID: "d-1"})
	if err != nil || del.Event.Kind != chat.MessageDelete || del.Event.Target.DeletedAt.IsZero() {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	page, _, err := s.History(ctx, w.Global, 0, 10)
	if err != nil || len(page) != 1 || page[0].DeletedAt.IsZero() || page[0].Text != "" {
		t.Fatalf("history after delete: %+v, %v", page, err)
	}
	// Sync replays the message, the edit and the delete, in order, each
	// event carrying its target's state now.
	after, err := s.After(ctx, w.Global, 0, 10)
	if err != nil || len(after) != 3 || after[0].ID != m.ID || after[1].Kind != chat.MessageEdit || after[2].Kind != chat.MessageDelete {
		t.Fatalf("after: %+v, %v", after, err)
	}
	if after[1].Target == nil || after[1].Target.DeletedAt.IsZero() {
		t.Fatalf("the edit event does not carry its target as it is now: %+v", after[1].Target)
	}
}

// A reply carries a preview of the message it answers, live and in history.
func TestReplyCarriesItsTarget(t *testing.T) {
	s, w := MustService(t)
	alice, bob := w.MustUser(t, "alice"), w.MustUser(t, "bob")
	q := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "question?"})
	a := MustSend(t, s, bob, delivery.SendRequest{Chat: w.Global, Text: "answer", ReplyTo: q.ID})
	if a.Reply == nil || a.Reply.ID != q.ID || a.Reply.Text != "question?" {
		t.Fatalf("live reply %+v", a.Reply)
	}
	page, _, err := s.History(context.Background(), w.Global, 0, 1)
	if err != nil || len(page) != 1 || page[0].Reply == nil || page[0].Reply.Text != "question?" {
		t.Fatalf("history reply: %+v, %v", page, err)
	}
}

// A message still waiting for the committer when its commit timeout has
// passed is answered "unavailable" and not stored: the client sends it
// again later with the same client id. Those within their time commit.
func TestLateMessagesAreNotStored(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	s, w := MustServiceWith(t, clock.Now)
	alice := w.MustUser(t, "alice")
	h := hold{make(chan struct{}), make(chan struct{})}
	if err := w.Sequencer.Submit(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	<-h.entered
	late := sendAsync(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "late", ClientID: "late"})
	clock.Advance(4 * time.Second)
	onTime := sendAsync(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "on time", ClientID: "on-time"})
	clock.Advance(2 * time.Second) // the first is 6 s old, the second 2 s
	close(h.release)
	if o := <-late; chat.ErrorCode(o.err) != chat.EUnavailable {
		t.Fatalf("a message past its time: %+v, %v", o.sent, o.err)
	}
	if o := <-onTime; o.err != nil || !o.sent.Created {
		t.Fatalf("a message within its time: %+v, %v", o.sent, o.err)
	}
	page, _, err := s.History(context.Background(), w.Global, 0, 10)
	if err != nil || len(page) != 1 || page[0].ClientID != "on-time" {
		t.Fatalf("stored %+v, %v", page, err)
	}
	// The resend is stored.
	if m := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "late", ClientID: "late"}); m.Text != "late" {
		t.Fatalf("resend %+v", m)
	}
}

// TestLastMessagesPreviewEachChat: the chat list's previews are each
// chat's newest message, opened, with its current text after an edit; an
// end-to-end encrypted chat's comes without text, and an empty chat has
// none.
func TestLastMessagesPreviewEachChat(t *testing.T) {
	s, w := MustService(t)
	ctx := context.Background()
	alice := w.MustUser(t, "alice")
	MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "first"})
	last := MustSend(t, s, alice, delivery.SendRequest{Chat: w.Global, Text: "second", ClientID: "c-2"})
	if _, err := s.Change(ctx, alice, delivery.ChangeRequest{Chat: w.Global, MessageID: last.ID, Text: "**second**, edited", ClientID: "c-3"}); err != nil {
		t.Fatal(err)
	}
	sums, err := w.Store.UserChats(ctx, alice.UserID)
	if err != nil || len(sums) != 1 {
		t.Fatalf("UserChats = %+v, %v", sums, err)
	}
	encrypted := sums[0]
	encrypted.E2EE = true
	empty := chat.ChatSummary{Chat: chat.Chat{ID: sums[0].ID + 100}}
	tests := []struct {
		name string
		sum  chat.ChatSummary
		want string
		ok   bool
	}{
		{"readable", sums[0], "**second**, edited", true},
		{"end-to-end encrypted", encrypted, "", true},
		{"empty", empty, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.LastMessages(ctx, []chat.ChatSummary{tt.sum})
			if err != nil {
				t.Fatal(err)
			}
			m, ok := got[tt.sum.ID]
			if ok != tt.ok || m.Text != tt.want || (ok && (m.ID != last.ID || m.Username != "alice")) {
				t.Fatalf("LastMessages = %+v (found %v); want text %q (found %v) of message %d", m, ok, tt.want, tt.ok, last.ID)
			}
		})
	}
}
