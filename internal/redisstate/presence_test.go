package redisstate_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/redisstate"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
	"github.com/redis/go-redis/v9"
)

// presenceNode is one node's presence with its own users and what it has
// been told of the others'.
type presenceNode struct {
	p      *redisstate.Presence
	mu     sync.Mutex
	local  map[int64]string
	remote map[int64]string
	stop   context.CancelFunc
	done   chan struct{}
}

func startPresence(t *testing.T, rdb *redis.Client, node string, grace time.Duration) *presenceNode {
	n := &presenceNode{local: map[int64]string{}, remote: map[int64]string{}, done: make(chan struct{})}
	n.p = redisstate.NewPresence(rdb, "site:", redisstate.PresenceOptions{
		Node: node, TTL: time.Second, Grace: grace, PollEvery: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	n.p.Attach(func() map[int64]string {
		n.mu.Lock()
		defer n.mu.Unlock()
		return maps.Clone(n.local)
	}, func(changes []redisstate.PresenceChange) {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, c := range changes {
			if c.Online {
				n.remote[c.UserID] = c.Username
			} else {
				delete(n.remote, c.UserID)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { defer close(n.done); n.p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-n.done })
	return n
}

func (n *presenceNode) set(uid int64, name string, online bool) {
	n.mu.Lock()
	if online {
		n.local[uid] = name
	} else {
		delete(n.local, uid)
	}
	n.p.Set(redisstate.PresenceChange{UserID: uid, Username: name, Online: online})
	n.mu.Unlock()
}

func (n *presenceNode) waitRemote(t *testing.T, want map[int64]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.mu.Lock()
		ok := maps.Equal(n.remote, want)
		got := maps.Clone(n.remote)
		n.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other nodes' users: %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	a := startPresence(t, rdb, "a", 300*time.Millisecond)
	b := startPresence(t, rdb, "b", 300*time.Millisecond)

	a.set(1, "ann", true)
	a.set(2, "al", true)
	b.set(3, "bea", true)
	b.waitRemote(t, map[int64]string{1: "ann", 2: "al"})
	a.waitRemote(t, map[int64]string{3: "bea"})

	// A user on both nodes stays online to each while the other holds them.
	b.set(1, "ann", true)
	a.set(2, "al", false)
	b.waitRemote(t, map[int64]string{1: "ann"})
	a.waitRemote(t, map[int64]string{1: "ann", 3: "bea"})

	// Redis restarts empty: each node writes its users again, and the
	// others read them back.
	srv.Kill()
	a.set(4, "ada", true) // while Redis is away
	srv.Restart()
	b.waitRemote(t, map[int64]string{1: "ann", 4: "ada"})
	a.waitRemote(t, map[int64]string{1: "ann", 3: "bea"})

	// More changes than the log keeps, at once: the reader loads the hash.
	for i := int64(100); i < 12100; i++ {
		a.set(i, "u", true)
	}
	for i := int64(100); i < 12100; i++ {
		a.set(i, "u", false)
	}
	a.set(5, "abe", true)
	b.waitRemote(t, map[int64]string{1: "ann", 4: "ada", 5: "abe"})

	// Node a stops: its users go offline to b after the grace.
	a.stop()
	<-a.done
	b.waitRemote(t, map[int64]string{})
}
