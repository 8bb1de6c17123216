package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFrameAgreesWithEncodingJSON(t *testing.T) {
	frames := []string{
		`{"type":"text","id":93512,"chat_id":7,"chat_name":"group:81a8","username":"bench00001","text":"1732420000000000000 3 17 rab12 lorem","timestamp":"2026-11-24T05:18:00.000Z","client_id":"rab12.3.17"}`,
		`{"type":"ack","client_id":"rab12.3.17","id":93512,"chat_name":"group:81a8","duplicate":true}`,
		`{"type":"error","code":"too_many","detail":"You are sending \"too\" fast; wait.","client_id":"rab12.0.1","retry_after":0.25}`,
		`{"type":"synced","chat_name":"group:81a8","last_id":4242}`,
		`{"type":"online_users","users":["a","b","c,}]{["]}`,
		`{"type":"chat_added","chat":{"id":9,"name":"group:x","members":[{"username":"id","role":"owner"}],"last_message_id":3}}`,
		`{"type":"text","id":5,"chat_name":"global","text":"escaped \"quote\" and \\ backslash and \u00e9","reply":{"id":4,"text":"{\"nested\": [1,2]}"},"client_id":""}`,
		` { "type" : "system" , "id" : 12 , "chat_name" : "g" , "system" : {"event":"created","users":null} , "text" : "x" } `,
		`{"type":"presence","username":"bench00002","online":false}`,
		`{"type":"text","id":6,"text":"\\\\\"q\\\\","chat_name":"g","client_id":"c"}`,
		`{"type":"text","id":7,"text":"ends in a backslash \\","chat_name":"g2","client_id":"c2"}`,
		`{"type":"hello","username":"u","chat_name":"global","max_message_bytes":8192,"resume":true}`,
	}
	for _, raw := range frames {
		var want struct {
			Type       string  `json:"type"`
			ID         int64   `json:"id"`
			ChatName   string  `json:"chat_name"`
			ClientID   string  `json:"client_id"`
			Code       string  `json:"code"`
			LastID     int64   `json:"last_id"`
			Duplicate  bool    `json:"duplicate"`
			RetryAfter float64 `json:"retry_after"`
			Text       string  `json:"text"`
		}
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatalf("test frame does not parse: %v\n%s", err, raw)
		}
		var f frame
		if !parseFrame([]byte(raw), &f) {
			t.Errorf("parseFrame refused %s", raw)
			continue
		}
		if string(f.typ) != want.Type || f.id != want.ID || string(f.chatName) != want.ChatName ||
			string(f.clientID) != want.ClientID || string(f.code) != want.Code || f.lastID != want.LastID ||
			f.dup != want.Duplicate || f.retry != want.RetryAfter {
			t.Errorf("frame %s\nparsed %+v\nwant   %+v", raw, f, want)
		}
		if !strings.Contains(want.Text, `\`) && string(f.text) != want.Text {
			t.Errorf("text %q, want %q", f.text, want.Text)
		}
	}
}

func TestParseFrameRefusesMalformed(t *testing.T) {
	for _, raw := range []string{
		``, `[]`, `"text"`, `{`, `{"type":"text"`, `{"type":"te`, `{"type" "text"}`, `{"type":}`,
		`{"type":"text",}x`, `{"a":{"b":[1,2}`, `{type:"text"}`, `{"type":"text"} trailing`,
		`{"type":"a\"}`, `{"type":"a\\\"}`,
	} {
		var f frame
		if parseFrame([]byte(raw), &f) {
			t.Errorf("parseFrame accepted %q", raw)
		}
	}
}

func TestTextAndClientIDRoundTrip(t *testing.T) {
	for _, size := range []int{1, 40, 80, 500} {
		text := appendText(nil, 1732420000123456789, 42, 7, "r0a1b2c3d", size)
		if len(text) < size {
			t.Errorf("size %d: text is %d bytes", size, len(text))
		}
		ns, roomIdx, seq, ok := parseText(text, "r0a1b2c3d")
		if !ok || ns != 1732420000123456789 || roomIdx != 42 || seq != 7 {
			t.Errorf("size %d: parsed %d %d %d %v from %q", size, ns, roomIdx, seq, ok, text)
		}
		if _, _, _, ok := parseText(text, "rOTHERRUN"); ok {
			t.Errorf("a message of another run must not count")
		}
		id := appendClientID(nil, "r0a1b2c3d", 42, 7)
		if len(id) > 64 {
			t.Errorf("client id %q longer than the server allows", id)
		}
		if r, s, ok := parseClientID(id, "r0a1b2c3d"); !ok || r != 42 || s != 7 {
			t.Errorf("client id %q parsed as %d %d %v", id, r, s, ok)
		}
		frame := appendSendFrame(nil, "group:ab12", id, text)
		var sent struct{ Type, Chat_name, Client_id, Text string }
		if err := json.Unmarshal(frame, &sent); err != nil || sent.Type != "text" || sent.Chat_name != "group:ab12" || sent.Client_id != string(id) || sent.Text != string(text) {
			t.Errorf("send frame %s: %v %+v", frame, err, sent)
		}
	}
	for _, bad := range []string{"", "hello world", "1 2", "x 1 2 r0a1b2c3d", "1 -1 2 r0a1b2c3d", "1 2 3 r0a1b2c3dX"} {
		if _, _, _, ok := parseText([]byte(bad), "r0a1b2c3d"); ok {
			t.Errorf("parseText accepted %q", bad)
		}
	}
	for _, bad := range []string{"", "r0a1b2c3d", "r0a1b2c3d.", "r0a1b2c3d.1", "r0a1b2c3d.1.x", "other.1.2", "srv-abc"} {
		if _, _, ok := parseClientID([]byte(bad), "r0a1b2c3d"); ok {
			t.Errorf("parseClientID accepted %q", bad)
		}
	}
}
