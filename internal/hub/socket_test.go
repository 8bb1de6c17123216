package hub

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestBatchedFrames checks the hub's own framing against the WebSocket
// library's reader: every payload length class (7-bit, 16-bit, 64-bit),
// several messages coalesced into one write and split across writes at
// maxBatchBytes, and the library's ping between batches.
func TestBatchedFrames(t *testing.T) {
	t.Parallel()
	sizes := []int{1, 125, 126, 127, 65535, 65536, 70000, 3, maxBatchBytes - 10, 200}
	payload := func(i, n int) []byte {
		return bytes.Repeat([]byte{"abcdefghij"[i%10]}, n)
	}
	h := &Hub{opt: Options{WriteTimeout: 5 * time.Second}}
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sock, err := h.Accept(w, r, nil)
		if err != nil {
			done <- err
			return
		}
		defer sock.ws.CloseNow()
		// The library reads (and answers pongs) on its own.
		ctx := sock.ws.CloseRead(context.Background())
		// Half the messages in one call, then a ping, then the rest one by one.
		var first [][]byte
		for i := range len(sizes) / 2 {
			first = append(first, payload(i, sizes[i]))
		}
		if _, err := sock.out.send(first); err != nil {
			done <- err
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := sock.ws.Ping(pctx); err != nil {
			done <- err
			return
		}
		for i := len(sizes) / 2; i < len(sizes); i++ {
			if _, err := sock.out.send([][]byte{payload(i, sizes[i])}); err != nil {
				done <- err
				return
			}
		}
		<-ctx.Done()
		done <- nil
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	for i, n := range sizes {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, n, err)
		}
		if typ != websocket.MessageText || !bytes.Equal(got, payload(i, n)) {
			t.Fatalf("message %d: type %v, %d bytes, want text of %d bytes of %q", i, typ, len(got), n, payload(i, 1))
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
