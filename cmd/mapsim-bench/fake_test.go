package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeServer speaks just enough of Mapsim Chat's API and WebSocket protocol
// for the tool to run against it, and can misbehave on purpose: drop one
// delivery, or deliver one twice. It exists to show that the tool notices.
type fakeServer struct {
	mu      sync.Mutex
	nextID  int64
	rooms   map[string]*fakeRoom
	stored  map[string]int64 // user + client_id → message id, for idempotent resends
	sent    int              // messages stored so far
	conns   int
	dropNth int // the nth message is not delivered to its room's first member
	dupNth  int // the nth message is delivered twice to its room's second member
	// Several nodes: connections by the node (Host) they came in on; a
	// starved node's connections get no live messages (only what sync
	// replays), and with noReplay sync replays nothing.
	byHost   map[string][]*fakeConn
	starve   string
	noReplay bool
}

type fakeRoom struct {
	name string
	id   int64
	ids  []int64
	msgs [][]byte
	subs []*fakeConn // in subscription order
}

type fakeConn struct {
	host string
	ws   *websocket.Conn
	user string
	seq  int
}

func (c *fakeConn) write(v any) {
	b, _ := json.Marshal(v)
	c.writeRaw(b)
}

func (c *fakeConn) writeRaw(b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.ws.Write(ctx, websocket.MessageText, b)
}

func newFakeServer(tb testing.TB, dropNth, dupNth int) string {
	tb.Helper()
	s := &fakeServer{dropNth: dropNth, dupNth: dupNth}
	srv := httptest.NewServer(s.handler())
	tb.Cleanup(srv.Close)
	return srv.URL
}

// handler is the fake's API; several httptest servers on one handler are
// the nodes of one installation.
func (s *fakeServer) handler() http.Handler {
	s.rooms, s.stored, s.byHost = map[string]*fakeRoom{}, map[string]int64{}, map[string][]*fakeConn{}
	mux := http.NewServeMux()
	fields := func(r *http.Request) map[string]any {
		m := map[string]any{}
		json.NewDecoder(r.Body).Decode(&m)
		return m
	}
	token := func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("POST /register/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("POST /login/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"access_token": fields(r)["username"]})
	})
	mux.HandleFunc("POST /ws-ticket/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"ticket": token(r)})
	})
	mux.HandleFunc("POST /chats/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.nextID++
		room := &fakeRoom{name: fmt.Sprintf("group:f%d", len(s.rooms)), id: int64(len(s.rooms) + 1)}
		s.rooms[room.name] = room
		last := s.nextID // a "group created" message, as the real server has
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": room.id, "name": room.name, "last_message_id": last})
	})
	mux.HandleFunc("POST /chats/{chat}/members", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		room := s.rooms[r.PathValue("chat")]
		s.nextID++
		last := s.nextID
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": room.id, "name": room.name, "last_message_id": last})
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		c := &fakeConn{host: r.Host, ws: ws, user: r.URL.Query().Get("ticket"), seq: s.conns}
		s.byHost[r.Host] = append(s.byHost[r.Host], c)
		s.mu.Unlock()
		defer s.drop(c)
		c.write(map[string]any{"type": "hello", "username": c.user, "resume": true})
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			var in struct {
				Type, Chat_name, Client_id, Text string
				After_id                         int64
			}
			json.Unmarshal(data, &in)
			switch in.Type {
			case "sync":
				s.mu.Lock()
				room := s.rooms[in.Chat_name]
				last := in.After_id
				for i, id := range room.ids {
					if id > in.After_id && !s.noReplay {
						c.writeRaw(room.msgs[i])
						last = id
					}
				}
				room.subs = append(room.subs, c)
				s.mu.Unlock()
				c.write(map[string]any{"type": "synced", "chat_name": room.name, "last_id": last})
			case "text":
				s.send(c, in.Chat_name, in.Client_id, in.Text)
			}
		}
	})
	return mux
}

// kill ends every connection that came in on host at once, with no close
// frame, as a process killed with SIGKILL does.
func (s *fakeServer) kill(host string) {
	s.mu.Lock()
	conns := s.byHost[host]
	s.mu.Unlock()
	for _, c := range conns {
		c.ws.CloseNow()
	}
}

// send stores a message (once per client id) and fans it out in id order.
func (s *fakeServer) send(from *fakeConn, chatName, clientID, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.rooms[chatName]
	if id, ok := s.stored[from.user+"/"+clientID]; ok {
		from.write(map[string]any{"type": "ack", "client_id": clientID, "id": id, "chat_name": chatName, "duplicate": true})
		return
	}
	s.nextID++
	s.sent++
	id := s.nextID
	s.stored[from.user+"/"+clientID] = id
	msg, _ := json.Marshal(map[string]any{"type": "text", "id": id, "chat_id": room.id, "chat_name": chatName,
		"username": from.user, "text": text, "timestamp": "2026-11-24T00:00:00.000Z", "client_id": clientID})
	room.ids = append(room.ids, id)
	room.msgs = append(room.msgs, msg)
	subs := slices.Clone(room.subs)
	slices.SortFunc(subs, func(a, b *fakeConn) int { return a.seq - b.seq })
	for i, c := range subs {
		if c.host == s.starve && s.starve != "" {
			continue
		}
		if s.sent == s.dropNth && i == 0 {
			continue
		}
		c.writeRaw(msg)
		if s.sent == s.dupNth && i == 1 {
			c.writeRaw(msg)
		}
	}
	from.write(map[string]any{"type": "ack", "client_id": clientID, "id": id, "chat_name": chatName})
}

func (s *fakeServer) drop(c *fakeConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		r.subs = slices.DeleteFunc(r.subs, func(x *fakeConn) bool { return x == c })
	}
	c.ws.CloseNow()
}

// mustRun runs the tool and returns its one result.
func mustRun(tb testing.TB, args ...string) *result {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "out.jsonl")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, append([]string{"mapsim-bench", "-json", out, "-svg", filepath.Join(tb.TempDir(), "plot.svg")}, args...), &stdout, &stderr)
	if err != nil {
		tb.Fatalf("run: %v\n%s", err, stderr.String())
	}
	results, err := readResults(out)
	if err != nil || len(results) != 1 {
		tb.Fatalf("results: %v (%d)", err, len(results))
	}
	tb.Logf("%s", stdout.String())
	return results[0]
}

func TestFanoutReportsLossAndDuplicates(t *testing.T) {
	url := newFakeServer(t, 5, 9)
	res := mustRun(t, "-url", url, "-scenario", "fanout", "-clients", "6", "-senders", "2", "-rate", "100",
		"-duration", "1s", "-warmup", "0s", "-drain", "3s")
	d := res.Deliveries
	if d == nil {
		t.Fatal("no delivery accounting")
	}
	if d.Acked < 50 || d.Expected != d.Acked*6 {
		t.Fatalf("acked %d, expected %d (6 members each)", d.Acked, d.Expected)
	}
	if d.Lost != 1 || d.LostMessages != 1 || d.Duplicates != 1 || d.Reordered != 0 || d.Unacked != 0 {
		t.Fatalf("the fake server dropped one delivery and doubled one; the tool says %+v", d)
	}
	if d.Unique != d.Expected-1 || d.Received != d.Expected {
		t.Fatalf("unique %d, received %d, expected %d", d.Unique, d.Received, d.Expected)
	}
	if res.Latency == nil || res.Latency.Count == 0 || res.Ack == nil || res.DeliveriesPerSec <= 0 {
		t.Fatalf("no latency or rate: %+v %+v %v", res.Latency, res.Ack, res.DeliveriesPerSec)
	}
}

func TestReconnectStormLosesNothing(t *testing.T) {
	url := newFakeServer(t, 0, 0)
	res := mustRun(t, "-url", url, "-scenario", "reconnect", "-clients", "12", "-room-size", "4", "-rate", "200",
		"-warmup", "1s", "-duration", "2s", "-drain", "5s", "-reconnect-jitter", "200ms")
	rc := res.Reconnect
	if rc == nil || rc.Clients != 12 || rc.Back != 12 || rc.AllBackSeconds <= 0 || rc.AllBackSeconds > 5 {
		t.Fatalf("storm: %+v", rc)
	}
	d := res.Deliveries
	if d.Lost != 0 || d.Duplicates != 0 || d.Reordered != 0 || d.Unacked != 0 || d.Acked < 100 {
		t.Fatalf("a server that replays on sync and dedupes resends loses nothing; the tool says %+v", d)
	}
	if res.Drops != 0 {
		t.Fatalf("%d unexpected drops; the cut is the tool's own", res.Drops)
	}
}
