package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// stuckServer accepts WebSockets and never reads from them, so that a
// client's writes fill the socket buffers and then hang.
func stuckServer(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dialStuck(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// A sender's write that hangs (the server stopped reading) is ended by the
// watchdog, which closes the connection; without it the write, which has
// no deadline of its own, would never return.
func TestWatchWritesEndsAHangingWrite(t *testing.T) {
	url := stuckServer(t)
	stuck := &client{}
	stuck.ws = dialStuck(t, url)
	idle := &client{} // connected, no write running: left alone
	idle.ws = dialStuck(t, url)
	rooms := []*room{{senders: []*client{stuck, idle}}}

	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { watchWrites(rooms, stop, 200*time.Millisecond, 20*time.Millisecond); close(watched) }()

	wrote := make(chan error, 1)
	go func() {
		frame := make([]byte, 1<<20)
		for {
			stuck.writeSince.Store(time.Now().UnixNano())
			err := stuck.ws.Write(context.Background(), websocket.MessageText, frame)
			stuck.writeSince.Store(0)
			if err != nil {
				wrote <- err
				return
			}
		}
	}()
	select {
	case err := <-wrote:
		t.Logf("the hanging write ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the hanging write was not ended by the watchdog")
	}
	// The idle sender's connection is still open.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := idle.ws.Write(ctx, websocket.MessageText, []byte("{}")); err != nil {
		t.Fatalf("the idle sender's connection was closed: %v", err)
	}
	close(stop)
	<-watched
}
