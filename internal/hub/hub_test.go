package hub_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// MustHub wires a hub to a real SQLite store, with short ping timings, and
// serves it: a request's "user" query names the (already created) user.
func MustHub(t *testing.T, ping, pongTimeout time.Duration) (*hub.Hub, *httptest.Server, *store.DB) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(t.TempDir(), "chat.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ring, err := keyring.Open(ctx, st, make([]byte, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.NewLocal()
	dl := delivery.New(delivery.Options{Store: st, Ring: ring, Broker: b, Log: log, MaxMessageBytes: 1000})
	runCtx, stop := context.WithCancel(ctx)
	go dl.Run(runCtx)
	t.Cleanup(stop)
	h := hub.New(hub.Options{Delivery: dl, Store: st, Broker: b, Log: log, PingInterval: ping, PongTimeout: pongTimeout})
	global, err := st.ChatByName(ctx, chat.GlobalChatName)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := st.UserByUsername(r.Context(), r.URL.Query().Get("user"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		sock, err := h.Accept(w, r, nil)
		if err != nil {
			return
		}
		ttl, err := time.ParseDuration(r.URL.Query().Get("ttl"))
		if err != nil {
			ttl = time.Hour
		}
		id := chat.Identity{UserID: u.ID, Username: u.Username, Role: u.Role, ExpiresAt: time.Now().Add(ttl)}
		h.Serve(r.Context(), sock, id, global, 1<<16, false)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return h, srv, st
}

func MustUser(t *testing.T, st *store.DB, name string) {
	t.Helper()
	u := chat.User{Username: name, PasswordHash: "x", Role: chat.RoleMember, CreatedAt: time.Now()}
	if err := st.CreateUser(context.Background(), &u, nil); err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, srv *httptest.Server, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// waitOnline waits until the hub's online list is want.
func waitOnline(t *testing.T, h *hub.Hub, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(h.Online(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("online = %v, want %v", h.Online(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSilentClientIsClosed: a client that answers no pings is closed after
// the pong timeout, while one that answers stays connected.
func TestSilentClientIsClosed(t *testing.T) {
	h, srv, st := MustHub(t, 20*time.Millisecond, 150*time.Millisecond)
	MustUser(t, st, "silent")
	MustUser(t, st, "lively")

	// A coder/websocket client answers pings only while something reads.
	dial(t, srv, "user=silent")
	readForever(dial(t, srv, "user=lively"))
	waitOnline(t, h, "lively", "silent")

	waitOnline(t, h, "lively")
	// lively has now lived through many ping intervals and a full timeout
	// since silent was dropped; it is still here after another timeout.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if !slices.Equal(h.Online(), []string{"lively"}) {
			t.Fatalf("online = %v: the answering client was closed", h.Online())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readForever reads and drops frames, which also answers pings.
func readForever(c *websocket.Conn) {
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
}

// TestSessionExpiryClosesConnection: a connection does not outlive the
// session that opened it, even while it answers every ping.
func TestSessionExpiryClosesConnection(t *testing.T) {
	h, srv, st := MustHub(t, 20*time.Millisecond, time.Minute)
	MustUser(t, st, "brief")
	MustUser(t, st, "steady")
	readForever(dial(t, srv, "user=steady"))
	readForever(dial(t, srv, "user=brief&ttl=200ms"))
	waitOnline(t, h, "brief", "steady")
	waitOnline(t, h, "steady")
}
