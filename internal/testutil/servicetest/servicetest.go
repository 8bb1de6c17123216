// Package servicetest builds what the services' package tests run on: a
// real SQLite store in a temp folder, a key ring, a running sequencer, and
// a broker that records every event it carries.
package servicetest

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// World is a store, key ring, sequencer and broker, wired and running.
type World struct {
	Store     *store.DB
	Ring      *keyring.Ring
	Sequencer *sequencer.Sequencer
	Broker    *Recorder
	Log       *slog.Logger
	Global    chat.Chat
}

// MustWorld opens a fresh SQLite store and starts a sequencer; both stop
// when the test ends.
func MustWorld(tb testing.TB) *World {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(tb.TempDir(), "chat.db")})
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := keyring.Open(ctx, st, make([]byte, 32), time.Now())
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	global, err := st.ChatByName(ctx, chat.GlobalChatName)
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	seq := sequencer.New(sequencer.Options{QueueDepth: 256, PublishDepth: 16})
	runCtx, stop := context.WithCancel(ctx)
	go seq.Run(runCtx)
	tb.Cleanup(func() {
		stop()
		<-seq.Stopped()
		st.Close()
	})
	rec := &Recorder{Local: broker.NewLocal()}
	return &World{Store: st, Ring: ring, Sequencer: seq, Broker: rec, Log: slog.New(slog.DiscardHandler), Global: global}
}

// MustUser creates a user (who joins the global chat) and returns its
// identity.
func (w *World) MustUser(tb testing.TB, name string) chat.Identity {
	tb.Helper()
	u := chat.User{Username: name, PasswordHash: "x", Role: chat.RoleMember, CreatedAt: time.Now()}
	if err := w.Store.CreateUser(context.Background(), &u, nil); err != nil {
		tb.Fatalf("create user %s: %v", name, err)
	}
	return chat.Identity{UserID: u.ID, Username: u.Username, Role: u.Role, ExpiresAt: time.Now().Add(time.Hour)}
}

// Recorder is the in-process broker, recording every event published.
type Recorder struct {
	*broker.Local
	mu     sync.Mutex
	events []chat.Event
}

// Publish records ev and delivers it.
func (r *Recorder) Publish(ctx context.Context, ev chat.Event) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return r.Local.Publish(ctx, ev)
}

// Events returns what was published so far, in order.
func (r *Recorder) Events() []chat.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Frames returns the decoded frames of the events published so far, in
// order: each a JSON object.
func (r *Recorder) Frames(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, ev := range r.Events() {
		var f map[string]any
		if err := json.Unmarshal(ev.Frame, &f); err != nil {
			tb.Fatalf("frame %s: %v", ev.Frame, err)
		}
		out = append(out, f)
	}
	return out
}

// Reset forgets the events recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}
