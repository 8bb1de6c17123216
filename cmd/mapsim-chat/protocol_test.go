package main

import (
	"testing"

	"github.com/coder/websocket"
)

// TestProtocolErrorCloses1002: a frame that breaks RFC 6455 closes that
// connection with 1002 (protocol error), and no one else notices. The
// WebSocket library returns an error for an unmasked client frame (§5.1)
// or a length with its top bit set without writing a close frame; the hub
// then closed those with 1000, as if nothing were wrong.
func TestProtocolErrorCloses1002(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, nil))
	gina := srv.MustUser(t, "gina")
	out, in := srv.MustDial(t, gina, "global"), srv.MustDial(t, gina, "global")
	out.nextType("hello")
	in.nextType("hello")
	mallory := srv.MustUser(t, "mallory")

	negativeLength := []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
	cases := []struct {
		name  string
		frame []byte
	}{
		{"unmasked text", appendFrame(nil, opText, []byte(`{"type":"ping"}`), false)},
		{"unmasked ping", appendFrame(nil, opPing, []byte("hi"), false)},
		{"negative length", negativeLength},
		// The library answers this one with 1002 itself.
		{"reserved opcode", appendFrame(nil, 0x3, []byte("?"), true)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.MustUpgrade(t, mallory)
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			code, err := c.closeCode()
			if err != nil || code != int(websocket.StatusProtocolError) {
				t.Fatalf("closed with %d (%v), want 1002", code, err)
			}
		})
	}
	out.send(map[string]any{"type": "text", "text": "unaffected", "client_id": "g1"})
	out.nextType("ack")
	if f := in.nextType("text"); f["client_id"] != "g1" {
		t.Fatalf("another user's connection got %v", f)
	}
}
