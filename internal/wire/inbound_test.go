package wire_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

func TestDecodeInboundRefuses(t *testing.T) {
	tests := []struct {
		name, frame, detail string
	}{
		{"not json", "hello there", `The frame is not a JSON object with a "type".`},
		{"array", `[1,2,3]`, `The frame is not a JSON object with a "type".`},
		{"string", `"text"`, `The frame is not a JSON object with a "type".`},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, `The frame is not a JSON object with a "type".`},
		{"trailing brace", `{"type":"ping"}}`, `The frame is not a JSON object with a "type".`},
		{"trailing bracket", `{"type":"ping"} ]`, `The frame is not a JSON object with a "type".`},
		{"cut short", `{"type":"ping"`, `The frame is not a JSON object with a "type".`},
		{"wrong field type", `{"type":"text","text":42}`, `The frame is not a JSON object with a "type".`},
		{"fraction id", `{"type":"sync","after_id":1.5}`, `The frame is not a JSON object with a "type".`},
		{"empty", ``, `The frame is not a JSON object with a "type".`},
		{"invalid utf-8", "{\"type\":\"text\",\"text\":\"\xff\xfe\"}", "The frame is not valid UTF-8."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := wire.DecodeInbound([]byte(tt.frame))
			if chat.ErrorCode(err) != chat.EInvalid || chat.ErrorMessage(err) != tt.detail {
				t.Fatalf("DecodeInbound(%q) = %+v, %v; want invalid %q", tt.frame, in, err, tt.detail)
			}
		})
	}
}

// FuzzDecodeInbound feeds arbitrary frames to the decoder the hub runs on
// every WebSocket text frame.
func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"text","chat_name":"global","text":"hi","client_id":"c-1","reply_to":7}`,
		`{"type":"edit","chat_name":"group:ab12","message_id":9,"text":"fixed","client_id":"e-1"}`,
		`{"type":"delete","message_id":9,"client_id":"d-1"}`,
		`{"type":"typing","typing":false}`,
		`{"type":"sync","chat_name":"global","after_id":-5}`,
		`{"type":"ping"}`,
		`{"TYPE":"ping","Text":"case folds"}`,
		`{"type":"text","text":"\ud800 lone surrogate, \u0000 NUL"}`,
		`null`,
		`{"type":"ping"}}`,
		`{"type":"ping"} {}`,
		"{\"type\":\"text\",\"text\":\"\xff\"}",
		`{"type":"text","text":42}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := wire.DecodeInbound(data)
		if err != nil {
			var ce *chat.Error
			if !errors.As(err, &ce) || ce.Code != chat.EInvalid || ce.Message == "" {
				t.Fatalf("DecodeInbound(%q) refused with %#v, want an invalid error with a sentence", data, err)
			}
			if !reflect.DeepEqual(in, wire.Inbound{}) {
				t.Fatalf("DecodeInbound(%q) refused but returned %+v", data, in)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("DecodeInbound accepted invalid UTF-8 %q", data)
		}
		if !json.Valid(data) {
			t.Fatalf("DecodeInbound accepted %q, which is not one JSON value", data)
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", in, err)
		}
		back, err := wire.DecodeInbound(again)
		if err != nil {
			t.Fatalf("re-encoded frame %s refused: %v", again, err)
		}
		if !reflect.DeepEqual(back, in) {
			t.Fatalf("%q decoded to %+v, re-encoded as %s, decoded again to %+v", data, in, again, back)
		}
	})
}
