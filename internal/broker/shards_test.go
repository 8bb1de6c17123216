package broker_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
)

// db is the committed events every node reads back: the database.
type db struct {
	mu     sync.Mutex
	events map[int64][]chat.Event // chat → events, in id order
	next   int64
}

// commit adds a message to a chat and returns its event.
func (d *db) commit(chatID int64) chat.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	prev := int64(0)
	if evs := d.events[chatID]; len(evs) > 0 {
		prev = evs[len(evs)-1].MessageID
	}
	ev := chat.Event{ChatID: chatID, MessageID: d.next, Prev: prev, Frame: []byte(`{"type":"text"}`)}
	d.events[chatID] = append(d.events[chatID], ev)
	return ev
}

func (d *db) After(_ context.Context, chatID, after int64, limit int) ([]chat.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []chat.Event
	for _, ev := range d.events[chatID] {
		if ev.MessageID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (d *db) NewestByChat(_ context.Context, after int64) (map[int64]int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[int64]int64{}
	for id, evs := range d.events {
		if n := evs[len(evs)-1].MessageID; n > after {
			out[id] = n
		}
	}
	return out, nil
}

// hub is one node's connections: the chats live here, the floor of each,
// and every message id delivered, per chat.
type hub struct {
	mu        sync.Mutex
	live      map[int64]int64 // chat → floor
	delivered map[int64][]int64
	other     []chat.Event // events without a message id
}

func newHub() *hub { return &hub{live: map[int64]int64{}, delivered: map[int64][]int64{}} }

func (h *hub) LiveChats() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []int64
	for id := range h.live {
		ids = append(ids, id)
	}
	return ids
}

func (h *hub) Live(chatID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.live[chatID]
	return ok
}

func (h *hub) Floor(chatID int64) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.live[chatID]
	return f, ok
}

func (h *hub) connect(chatID, floor int64) {
	h.mu.Lock()
	h.live[chatID] = floor
	h.mu.Unlock()
}

func (h *hub) disconnect(chatID int64) {
	h.mu.Lock()
	delete(h.live, chatID)
	h.mu.Unlock()
}

func (h *hub) deliver(ev chat.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.MessageID == 0 {
		h.other = append(h.other, ev)
		return
	}
	if _, ok := h.live[ev.ChatID]; ok {
		h.delivered[ev.ChatID] = append(h.delivered[ev.ChatID], ev.MessageID)
		h.live[ev.ChatID] = ev.MessageID
	}
}

func (h *hub) got(chatID int64) []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.delivered[chatID])
}

// node is one broker with its hub.
type node struct {
	b   *broker.Redis
	hub *hub
}

func startNode(t *testing.T, rd *redistest.Server, d *db, prefix string) *node {
	t.Helper()
	b, err := broker.NewRedis(broker.RedisOptions{URL: rd.URL(), Prefix: prefix, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Shards: 16, ShardIdle: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := newHub()
	b.Subscribe(h.deliver)
	b.Attach(d, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &node{b: b, hub: h}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisShards: a node hears a chat's events only while it holds a
// connection in one of its shard's chats; a chat that gets one here
// receives what committed before its shard was subscribed (the fill on
// confirmation) and everything after, once each; a shard left idle is
// unsubscribed and subscribed again when needed; after Redis restarts the
// node subscribes its shards again and fills what it missed.
func TestRedisShards(t *testing.T) {
	rd := redistest.Start(t)
	d := &db{events: map[int64][]chat.Event{}}
	a := startNode(t, rd, d, "t:")
	c := startNode(t, rd, d, "t:")
	waitFor(t, "both up", func() bool { return a.b.Up() && c.b.Up() })
	ctx := context.Background()

	// Chat 1 lives on A only: C hears none of its events.
	a.hub.connect(1, 0)
	a.b.Await(ctx, []int64{1})
	var want []int64
	for range 5 {
		ev := d.commit(1)
		want = append(want, ev.MessageID)
		a.b.Publish(ctx, ev)
	}
	waitFor(t, "A delivers its own", func() bool { return slices.Equal(a.hub.got(1), want) })
	// A read marker of a member is the chat's too: only A hears it.
	a.b.Publish(ctx, chat.Event{ChatID: 1, UserIDs: []int64{7}, Frame: []byte(`{"type":"read"}`)})
	// A control event (a membership change) reaches C, which proves C
	// has read everything A published before it.
	a.b.Publish(ctx, chat.Event{ChatID: 1, UserIDs: []int64{7}, Membership: chat.MembershipLeave, Frame: []byte(`{}`)})
	waitFor(t, "the control event on C", func() bool { return c.b.Stats().Received >= 1 })
	if got := c.b.Stats().Received; got != 1 {
		t.Fatalf("C received %d events, want 1 (the control event only)", got)
	}
	if s := c.b.Shards(); len(s) != 0 {
		t.Fatalf("C subscribes %v with no connection", s)
	}

	// A connection on C: messages committed before its shard is
	// subscribed and not heard come from the fill; later ones live.
	lost := d.commit(1) // committed, its publish lost
	want = append(want, lost.MessageID)
	c.hub.connect(1, want[len(want)-2])
	c.b.Await(ctx, []int64{1})
	if s := c.b.Shards(); len(s) != 1 {
		t.Fatalf("C subscribes %v after a connection in chat 1", s)
	}
	waitFor(t, "the fill on C", func() bool { return slices.Contains(c.hub.got(1), lost.MessageID) })
	for range 5 {
		ev := d.commit(1)
		want = append(want, ev.MessageID)
		a.b.Publish(ctx, ev)
	}
	wantC := want[len(want)-6:]
	waitFor(t, "C holds every message once, in order", func() bool { return slices.Equal(c.hub.got(1), wantC) })

	// Idle: the shard goes, and C hears nothing more of chat 1.
	c.hub.disconnect(1)
	waitFor(t, "C unsubscribes", func() bool { return len(c.b.Shards()) == 0 })
	before := c.b.Stats().Received
	for range 3 {
		a.b.Publish(ctx, d.commit(1))
	}
	a.b.Publish(ctx, chat.Event{ChatID: 1, UserIDs: []int64{7}, Membership: chat.MembershipLeave, Frame: []byte(`{}`)})
	waitFor(t, "the control event on C", func() bool { return c.b.Stats().Received >= before+1 })
	if got := c.b.Stats().Received - before; got != 1 {
		t.Fatalf("C received %d events after unsubscribing, want 1", got)
	}

	// Back: subscribed again, from the connection's floor.
	floor := d.commit(1)
	a.b.Publish(ctx, floor)
	c.hub.connect(1, floor.MessageID)
	c.b.Await(ctx, []int64{1})
	ev := d.commit(1)
	a.b.Publish(ctx, ev)
	waitFor(t, "C hears chat 1 again", func() bool { return slices.Contains(c.hub.got(1), ev.MessageID) })
	if st := c.b.Stats(); st.ShardSubscribes != 2 || st.SubscribedShards != 1 {
		t.Fatalf("C: %d shard subscriptions, %d subscribed now; want 2 and 1", st.ShardSubscribes, st.SubscribedShards)
	}

	// Redis restarts: C subscribes chat 1's shard again and fills what
	// committed meanwhile.
	rd.Kill()
	waitFor(t, "C down", func() bool { return !c.b.Up() })
	missed := d.commit(1)
	rd.Restart()
	waitFor(t, "C up again with its shard", func() bool { return c.b.Up() && len(c.b.Shards()) == 1 })
	waitFor(t, "the message committed while Redis was away", func() bool { return slices.Contains(c.hub.got(1), missed.MessageID) })
	after := d.commit(1)
	a.b.Publish(ctx, after)
	waitFor(t, "live again", func() bool { return slices.Contains(c.hub.got(1), after.MessageID) })
	got := c.hub.got(1)
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatalf("C delivered %v: out of order or twice", got)
	}
}

// TestRedisShardCollision: two chats that share a shard share its
// channel; a node with a connection in one drops the other's events at
// its line and delivers them to nobody.
func TestRedisShardCollision(t *testing.T) {
	rd := redistest.Start(t)
	d := &db{events: map[int64][]chat.Event{}}
	a := startNode(t, rd, d, "t:")
	c := startNode(t, rd, d, "t:")
	waitFor(t, "both up", func() bool { return a.b.Up() && c.b.Up() })
	ctx := context.Background()
	a.hub.connect(3, 0)
	a.hub.connect(19, 0) // 19 mod 16 == 3
	c.hub.connect(3, 0)
	a.b.Await(ctx, []int64{3, 19})
	c.b.Await(ctx, []int64{3})
	e1 := d.commit(19)
	a.b.Publish(ctx, e1)
	e2 := d.commit(3)
	a.b.Publish(ctx, e2)
	// C may deliver chat 3 from the database first (its start-up resync
	// fills what committed meanwhile): wait for the shard's two events too.
	waitFor(t, "chat 3 on C, and both events off the shard", func() bool {
		return slices.Equal(c.hub.got(3), []int64{e2.MessageID}) && c.b.Stats().Received >= 2
	})
	if got := c.hub.got(19); len(got) != 0 {
		t.Fatalf("C delivered %v of a chat it has no connection in", got)
	}
	if got := c.b.Stats().Received; got != 2 {
		t.Fatalf("C received %d, want 2 (the shard carries both chats)", got)
	}
}
