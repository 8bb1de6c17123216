package store_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// observations records what a Timing observer was given.
type observations struct {
	mu   sync.Mutex
	vals []float64
}

func (o *observations) Observe(v float64) {
	o.mu.Lock()
	o.vals = append(o.vals, v)
	o.mu.Unlock()
}

func (o *observations) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.vals)
}

// TestTiming: with Options.Timing the store's driver is wrapped; reads,
// writes and commits are observed, and every value still reaches the
// database and comes back as it went in (ids, times, blobs, strings, a
// duplicate client id), on both dialects.
func TestTiming(t *testing.T) {
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		var query, exec, commit observations
		opts.Timing = &store.Timing{Query: &query, Exec: &exec, Commit: &commit}
		db := MustOpen(t, opts)
		ctx := context.Background()
		u := MustCreateUser(t, db, "Timed")
		global := MustGlobal(t, db)
		kv := MustKeyVersion(t, db)
		msgs := []chat.NewMessage{
			{ChatID: global.ID, UserID: u.ID, Kind: chat.MessageText, KeyVersion: kv, Body: []byte{0, 1, 2, 0xff}, ClientID: "t1", CreatedAt: base},
			{ChatID: global.ID, UserID: u.ID, Kind: chat.MessageText, KeyVersion: kv, Body: []byte("second"), ClientID: "t2", CreatedAt: base},
		}
		ins, err := db.InsertMessages(ctx, msgs)
		if err != nil || len(ins) != 2 || !ins[0].Created || !ins[1].Created {
			t.Fatalf("insert: %+v, %v", ins, err)
		}
		again, err := db.InsertMessages(ctx, msgs[:1])
		if err != nil || len(again) != 1 || again[0].Created || again[0].ID != ins[0].ID {
			t.Fatalf("a repeated client id: %+v, %v", again, err)
		}
		got, err := db.MessagesAfter(ctx, global.ID, 0, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("read back: %d messages, %v", len(got), err)
		}
		for i, m := range got {
			if m.ID != ins[i].ID || !bytes.Equal(m.Body, msgs[i].Body) || m.ClientID != msgs[i].ClientID || !m.CreatedAt.Equal(base) || m.UserID != u.ID {
				t.Errorf("message %d came back as %+v", i, m)
			}
		}
		if back, err := db.UserByUsername(ctx, "timed"); err != nil || back.ID != u.ID {
			t.Fatalf("user by name: %+v, %v", back, err)
		}
		for name, o := range map[string]*observations{"query": &query, "exec": &exec, "commit": &commit} {
			if o.count() == 0 {
				t.Errorf("no %s was timed", name)
			}
			o.mu.Lock()
			for _, v := range o.vals {
				if v < 0 || v > 60 {
					t.Errorf("a %s took %v s", name, v)
				}
			}
			o.mu.Unlock()
		}
	})
}
