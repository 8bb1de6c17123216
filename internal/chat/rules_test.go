package chat_test

import (
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		name, text string
		code       string
	}{
		{"plain", "hello", ""},
		{"lines and tabs", "a\n\tb", ""},
		{"Persian", "سلام", ""},
		{"a bidi override, isolated by clients", "\u202Egpj.exe", ""},
		{"at the limit", strings.Repeat("é", 5), ""},
		{"over the limit", strings.Repeat("é", 5) + "x", chat.ETooLarge},
		{"empty", "", chat.EInvalid},
		{"blank", " \n\t", chat.EInvalid},
		{"not UTF-8", "a\xffb", chat.EInvalid},
		{"a control character", "a\x07b", chat.EInvalid},
		{"a carriage return", "a\rb", chat.EInvalid},
		{"an encoded replacement character", "a\uFFFDb", chat.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := chat.ErrorCode(chat.CheckText(tt.text, 10)); got != tt.code {
				t.Fatalf("CheckText(%q) = %q, want %q", tt.text, got, tt.code)
			}
		})
	}
}

func TestCheckClientID(t *testing.T) {
	for _, ok := range []string{"", "c-1", "web:1700000000000.abc_DEF", strings.Repeat("x", chat.MaxClientIDLen)} {
		if err := chat.CheckClientID(ok); err != nil {
			t.Errorf("CheckClientID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a b", "a/b", "é", "a\x00", strings.Repeat("x", chat.MaxClientIDLen+1)} {
		if chat.ErrorCode(chat.CheckClientID(bad)) != chat.EInvalid {
			t.Errorf("CheckClientID(%q) accepted", bad)
		}
	}
	if a, b := chat.NewClientID(), chat.NewClientID(); a == b || chat.CheckClientID(a) != nil || !strings.HasPrefix(a, "srv-") {
		t.Fatalf("NewClientID: %q, %q", a, b)
	}
}

func TestCheckTitle(t *testing.T) {
	tests := []struct {
		name, title, want string
		code              string
	}{
		{"trimmed", "  Ops  ", "Ops", ""},
		{"Persian", "گروه عملیات", "گروه عملیات", ""},
		{"at the limit", strings.Repeat("x", chat.MaxTitleBytes), strings.Repeat("x", chat.MaxTitleBytes), ""},
		{"over the limit", strings.Repeat("x", chat.MaxTitleBytes+1), "", chat.EInvalid},
		{"blank", "   ", "", chat.EInvalid},
		{"not UTF-8", "Ops\xff", "", chat.EInvalid},
		{"a control character", "Ops\x00", "", chat.EInvalid},
		{"a right-to-left override", "invoice\u202Egpj.exe", "", chat.EInvalid},
		{"a left-to-right embedding", "a\u202Ab", "", chat.EInvalid},
		{"a first-strong isolate", "a\u2068b", "", chat.EInvalid},
		{"a pop directional isolate", "a\u2069b", "", chat.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chat.CheckTitle(tt.title)
			if chat.ErrorCode(err) != tt.code || got != tt.want {
				t.Fatalf("CheckTitle(%q) = %q, %v; want %q, %q", tt.title, got, err, tt.want, tt.code)
			}
		})
	}
}

func TestSystemEventText(t *testing.T) {
	tests := []struct {
		ev   chat.SystemEvent
		want string
	}{
		{chat.SystemEvent{Event: chat.EventCreated, Actor: "alice", Title: "Ops"}, "alice created the group “Ops”."},
		{chat.SystemEvent{Event: chat.EventCreated, Actor: "alice", Title: "Ops", Users: []string{"bob", "carol", "dave"}}, "alice created the group “Ops” with bob, carol and dave."},
		{chat.SystemEvent{Event: chat.EventAdded, Actor: "alice", Users: []string{"bob", "carol"}}, "alice added bob and carol."},
		{chat.SystemEvent{Event: chat.EventRemoved, Actor: "alice", Users: []string{"bob"}}, "alice removed bob."},
		{chat.SystemEvent{Event: chat.EventLeft, Actor: "bob"}, "bob left."},
		{chat.SystemEvent{Event: chat.EventRenamed, Actor: "bob", Title: "Night"}, "bob renamed the group to “Night”."},
		{chat.SystemEvent{Event: chat.EventOwner, Users: []string{"carol"}}, "carol is now the owner."},
		{chat.SystemEvent{Event: "future", Actor: "bob"}, "bob: future"},
	}
	for _, tt := range tests {
		if got := tt.ev.Text(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.ev, got, tt.want)
		}
	}
}
