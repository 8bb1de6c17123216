package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// MustHub wires a hub to a real SQLite store, with short ping timings, and
// serves it: a request's "user" query names the (already created) user.
func MustHub(t *testing.T, ping, pongTimeout time.Duration) (*hub.Hub, *httptest.Server, *store.DB, chat.Broker) {
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
	seq := sequencer.New(sequencer.Options{QueueDepth: 64, PublishDepth: 8})
	dl := delivery.New(delivery.Options{Store: st, Ring: ring, Sequencer: seq, Broker: b, Log: log, MaxMessageBytes: 1000, CommitTimeout: 5 * time.Second})
	cs := chats.New(chats.Options{Store: st, Ring: ring, Sequencer: seq, Broker: b, Log: log, CommitTimeout: 5 * time.Second})
	runCtx, stop := context.WithCancel(ctx)
	go seq.Run(runCtx)
	t.Cleanup(stop)
	// No presence grace: these tests watch connections end through Online.
	h := hub.New(hub.Options{
		Messages: dl, Chats: cs, Broker: b, Log: log,
		Limits:    chat.Limits{MaxMessageBytes: 1000, MessageRate: 10, MessageBurst: 20, FrameRate: 40, FrameBurst: 80},
		QueueSize: 256, PingInterval: ping, PongTimeout: pongTimeout, WriteTimeout: 10 * time.Second, FrameTimeout: 5 * time.Second,
		SyncPage: 200, TypingTTL: 5 * time.Second, PresenceLimit: 500, WriteDelay: 5 * time.Millisecond, BusyWrites: 10000,
	})
	go h.Run(runCtx)
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
		h.Serve(r.Context(), sock, id, global, 1<<16, false, nil)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return h, srv, st, b
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
	h, srv, st, _ := MustHub(t, 20*time.Millisecond, 150*time.Millisecond)
	MustUser(t, st, "silent")
	MustUser(t, st, "lively")

	// A coder/websocket client answers pings only while something reads:
	// lively reads all along; silent reads its hello (so it surely was
	// registered, however slow the machine) and then nothing.
	readForever(dial(t, srv, "user=lively"))
	waitOnline(t, h, "lively")
	silent := dial(t, srv, "user=silent")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, hello, err := silent.Read(ctx); err != nil || !strings.Contains(string(hello), `"hello"`) {
		t.Fatalf("silent's first frame: %s, %v", hello, err)
	}

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
	h, srv, st, _ := MustHub(t, 20*time.Millisecond, time.Minute)
	MustUser(t, st, "brief")
	MustUser(t, st, "steady")
	readForever(dial(t, srv, "user=steady"))
	readForever(dial(t, srv, "user=brief&ttl=200ms"))
	waitOnline(t, h, "brief", "steady")
	waitOnline(t, h, "steady")
}

// TestFramesCoalesce: frames that reach a connection while its writer is
// busy or waiting out the write delay go out together, in fewer writes than
// frames, and in order.
func TestFramesCoalesce(t *testing.T) {
	h, srv, st, b := MustHub(t, time.Minute, time.Minute)
	MustUser(t, st, "reader")
	c := dial(t, srv, "user=reader")
	waitOnline(t, h, "reader")
	global, err := st.ChatByName(context.Background(), chat.GlobalChatName)
	if err != nil {
		t.Fatal(err)
	}
	// hello and online_users first.
	for range 2 {
		if _, _, err := c.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The counters are added after each write returns, which may be after
	// the client has read it: wait for them.
	waitFrames := func(n int64) hub.Stats {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := h.Stats()
			if st.Frames >= n {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d frames counted, want %d", st.Frames, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	before := waitFrames(2)
	const n = 200
	for i := range n {
		b.Publish(context.Background(), chat.Event{ChatID: global.ID, Frame: []byte(fmt.Sprintf(`{"type":"probe","n":%d}`, i))})
	}
	for i := range n {
		_, data, err := c.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"type":"probe","n":%d}`, i); string(data) != want {
			t.Fatalf("frame %d = %s, want %s", i, data, want)
		}
	}
	after := waitFrames(before.Frames + n)
	frames, writes := after.Frames-before.Frames, after.Writes-before.Writes
	if frames != n || writes >= frames {
		t.Fatalf("%d frames in %d writes: not coalesced", frames, writes)
	}
	t.Logf("%d frames in %d writes", frames, writes)
}

// TestFrameInUpgradeSegment: a client may send its first frame in the same
// write as the upgrade request, so that the frame sits in the HTTP
// server's read buffer when the connection is taken over. It must be read
// as the first frame, not lost (the stream would go out of step).
func TestFrameInUpgradeSegment(t *testing.T) {
	_, srv, st, _ := MustHub(t, time.Minute, time.Minute)
	MustUser(t, st, "eager")
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	payload := []byte(`{"type":"ping"}`)
	mask := []byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask...)
	for i, c := range payload {
		frame = append(frame, c^mask[i%4])
	}
	req := "GET /?user=eager HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for {
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("no pong: %v", err)
		}
		n := int(head[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			io.ReadFull(br, ext[:])
			n = int(ext[0])<<8 | int(ext[1])
		case 127:
			t.Fatal("unexpectedly long frame")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if head[0]&0x0f == 0x8 {
			t.Fatalf("server closed the connection: %q", body)
		}
		if strings.Contains(string(body), `"pong"`) {
			return
		}
	}
}
