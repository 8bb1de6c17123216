package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialRefusal opens a WebSocket with a bearer token and extra headers. It
// returns the connection, or the status and detail of the refusal.
func (s *testServer) dialRefusal(ctx context.Context, client *http.Client, token string, header http.Header) (*websocket.Conn, int, string, error) {
	h := http.Header{"Authorization": {"Bearer " + token}}
	for k, v := range header {
		h[k] = v
	}
	conn, resp, err := websocket.Dial(ctx, s.wsURL("chat_name=global"), &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	if err == nil {
		return conn, 0, "", nil
	}
	if resp == nil {
		return nil, 0, "", err
	}
	var body struct {
		Detail string `json:"detail"`
	}
	if resp.Body != nil {
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &body)
	}
	return nil, resp.StatusCode, body.Detail, nil
}

// TestConnectionsPerUser: one user past MAX_CONNECTIONS_PER_USER is
// refused with 429 and a sentence that says why, while another user at the
// same address (a school behind one NAT) still connects; the address's
// own cap still holds, and a closed connection gives both slots back.
func TestConnectionsPerUser(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, map[string]string{"MAX_CONNECTIONS_PER_USER": "3", "MAX_CONNECTIONS_PER_IP": "5"}))
	alice, bob, carol := srv.MustUser(t, "alice"), srv.MustUser(t, "bob"), srv.MustUser(t, "carol")
	ctx := context.Background()
	open := func(who, token string) *websocket.Conn {
		t.Helper()
		conn, status, detail, err := srv.dialRefusal(ctx, nil, token, nil)
		if err != nil || conn == nil {
			t.Fatalf("%s refused: %v %d %s", who, err, status, detail)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	refused := func(who, token, because string) {
		t.Helper()
		conn, status, detail, err := srv.dialRefusal(ctx, nil, token, nil)
		if conn != nil {
			conn.CloseNow()
			t.Fatalf("%s connected, want 429 (%s)", who, because)
		}
		if err != nil || status != http.StatusTooManyRequests || !strings.Contains(detail, because) {
			t.Fatalf("%s: %v %d %q, want 429 saying %q", who, err, status, detail, because)
		}
	}

	var aliceConns []*websocket.Conn
	for i := range 3 {
		aliceConns = append(aliceConns, open(fmt.Sprint("alice's connection ", i+1), alice))
	}
	refused("alice's fourth connection", alice, "You already have 3 connections open")
	open("bob, at alice's address", bob)
	open("bob's second", bob)
	refused("carol, the address's sixth", carol, "This address already holds 5 connections")

	// Alice closes a tab: her slot and the address's come back once the
	// server has seen it close.
	aliceConns[0].Close(websocket.StatusNormalClosure, "")
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, status, detail, err := srv.dialRefusal(ctx, nil, carol, nil)
		if conn != nil {
			conn.CloseNow()
			break
		}
		if err != nil || status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("carol after alice closed a tab: %v %d %s", err, status, detail)
		}
	}
}
