package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsServer runs handle for each WebSocket accepted with the general
// library, so the tool's own client is checked against another
// implementation of the protocol.
func wsServer(t *testing.T, handle func(ctx context.Context, ws *websocket.Conn)) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		handle(r.Context(), ws)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse("ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?ticket=x")
	return u
}

func dialTest(t *testing.T, u *url.URL, limit int64) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := dialWS(ctx, &net.Dialer{}, u, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ws.CloseNow)
	return ws
}

func TestWSConnExchangesMessages(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes: a 64-bit length
	mid := bytes.Repeat([]byte("m"), 300)                  // a 16-bit length
	u := wsServer(t, func(ctx context.Context, ws *websocket.Conn) {
		ws.SetReadLimit(1 << 20)
		for {
			typ, p, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(p) == "fragments" {
				// One message in three frames.
				w, _ := ws.Writer(ctx, websocket.MessageText)
				w.Write([]byte("one,"))
				w.Write([]byte("two,"))
				w.Write([]byte("three"))
				w.Close()
				continue
			}
			if string(p) == "ping" {
				// Ping waits for the client's pong, which the client
				// sends while it reads; the answer follows the pong.
				go func() {
					err := ws.Ping(ctx)
					msg := "pong received"
					if err != nil {
						msg = "no pong: " + err.Error()
					}
					ws.Write(ctx, websocket.MessageText, []byte(msg))
				}()
				continue
			}
			ws.Write(ctx, typ, p)
		}
	})
	ws := dialTest(t, u, 1<<20)
	read := func() string {
		t.Helper()
		var buf bytes.Buffer
		if err := ws.readMessage(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	for _, msg := range [][]byte{[]byte("hello"), []byte(""), mid, big} {
		if err := ws.writeText(msg); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != string(msg) {
			t.Fatalf("echo of %d bytes came back as %d bytes", len(msg), len(got))
		}
	}
	ws.writeText([]byte("fragments"))
	if got := read(); got != "one,two,three" {
		t.Fatalf("fragmented message read as %q", got)
	}
	ws.writeText([]byte("ping"))
	if got := read(); got != "pong received" {
		t.Fatalf("ping: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.writeTextCtx(ctx, []byte("with a context")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "with a context" {
		t.Fatalf("echo: %q", got)
	}
}

// The server's close code reaches the reader, and the client answers the
// close so the server's closing handshake completes.
func TestWSConnServerClose(t *testing.T) {
	closed := make(chan error, 1)
	u := wsServer(t, func(ctx context.Context, ws *websocket.Conn) {
		closed <- ws.Close(4001, "session expired")
	})
	ws := dialTest(t, u, 1<<10)
	err := ws.readMessage(&bytes.Buffer{})
	if websocket.CloseStatus(err) != 4001 {
		t.Fatalf("read ended with %v, want close 4001", err)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != "session expired" {
		t.Fatalf("close reason: %v", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("the server's closing handshake: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's close was not answered")
	}
}

// The client's own close: the server sees the code, and the client's
// reader ends on the server's answer.
func TestWSConnClientClose(t *testing.T) {
	got := make(chan websocket.StatusCode, 1)
	u := wsServer(t, func(ctx context.Context, ws *websocket.Conn) {
		_, _, err := ws.Read(ctx)
		got <- websocket.CloseStatus(err)
	})
	ws := dialTest(t, u, 1<<10)
	if err := ws.Close(websocket.StatusNormalClosure, "benchmark done"); err != nil {
		t.Fatal(err)
	}
	if err := ws.readMessage(&bytes.Buffer{}); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("reader ended with %v", err)
	}
	if code := <-got; code != websocket.StatusNormalClosure {
		t.Fatalf("server saw %v", code)
	}
	if err := ws.writeText([]byte("late")); err == nil {
		t.Fatal("a write after the close frame succeeded")
	}
}

func TestWSConnReadLimit(t *testing.T) {
	u := wsServer(t, func(ctx context.Context, ws *websocket.Conn) {
		ws.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 2000))
		ws.Read(ctx)
	})
	ws := dialTest(t, u, 1000)
	err := ws.readMessage(&bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "over 1000 bytes") {
		t.Fatalf("a message over the limit: %v", err)
	}
}

func TestWSConnRefusedHandshake(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too many connections", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	u, _ := url.Parse("ws" + strings.TrimPrefix(srv.URL, "http") + "/ws")
	_, err := dialWS(context.Background(), &net.Dialer{}, u, 1<<10)
	var he *wsHandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests || he.Detail != "too many connections" {
		t.Fatalf("dial: %v", err)
	}
}

// rawServer answers the upgrade correctly, then sends the given bytes as
// its frames.
// With hangUp it closes the connection after them.
func rawServer(t *testing.T, frames []byte, hangUp bool) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		accept := acceptFor(req.Header.Get("Sec-WebSocket-Key"))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+accept+"\r\n\r\n")
		c.Write(frames)
		if !hangUp {
			io.Copy(io.Discard, c)
		}
	}()
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/ws")
	return u
}

// A server that breaks the protocol ends the read with a clear error.
func TestWSConnRefusesBrokenFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []byte
		want   string
		hangUp bool // the server closes the connection after the frames
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, "masked", false},
		{"reserved bits", []byte{0xC1, 0x01, 'x'}, "reserved bits", false},
		{"unknown opcode", []byte{0x83, 0x01, 'x'}, "unknown opcode", false},
		{"stray continuation", []byte{0x80, 0x01, 'x'}, "continuation", false},
		{"message inside a message", []byte{0x01, 0x01, 'a', 0x81, 0x01, 'b'}, "inside", false},
		{"long ping", append([]byte{0x89, 126, 0, 200}, make([]byte, 200)...), "control frame", false},
		{"cut short", []byte{0x81, 0x05, 'a', 'b'}, "unexpected EOF", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := dialTest(t, rawServer(t, tc.frames, tc.hangUp), 1<<10)
			err := ws.readMessage(&bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read ended with %v, want %q", err, tc.want)
			}
		})
	}
}

// A sender's write that hangs (the server stopped reading) is ended by the
// watchdog, which closes the connection; without it the write, which has
// no deadline of its own, would never return.
func TestWatchWritesEndsAHangingWrite(t *testing.T) {
	// The server never reads, so the client's writes fill the socket
	// buffers and then hang.
	release := make(chan struct{})
	u := wsServer(t, func(context.Context, *websocket.Conn) { <-release })
	t.Cleanup(func() { close(release) })
	stuck := &client{ws: dialTest(t, u, readLimit)}
	idle := &client{ws: dialTest(t, u, readLimit)} // connected, no write running: left alone
	rooms := []*room{{senders: []*client{stuck, idle}}}

	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { watchWrites(rooms, stop, 200*time.Millisecond, 20*time.Millisecond); close(watched) }()

	wrote := make(chan error, 1)
	go func() {
		frame := make([]byte, 1<<20)
		for {
			stuck.writeSince.Store(time.Now().UnixNano())
			err := stuck.ws.writeText(frame)
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
	if err := idle.ws.writeText([]byte("{}")); err != nil {
		t.Fatalf("the idle sender's connection was closed: %v", err)
	}
	close(stop)
	<-watched
}

// A server that accepts the connection and never answers the upgrade: the
// dial ends when its context does.
func TestWSConnHandshakeBoundByContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/ws")
	for _, cancelEarly := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		if cancelEarly {
			go cancel() // canceled rather than timed out
		}
		done := make(chan error, 1)
		go func() {
			_, err := dialWS(ctx, &net.Dialer{}, u, 1<<10)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the dial succeeded without an answer")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the dial outlived its context")
		}
		cancel()
	}
}
