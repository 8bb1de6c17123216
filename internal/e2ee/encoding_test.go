package e2ee_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

func TestTranscript(t *testing.T) {
	tests := []struct {
		name   string
		label  string
		fields [][]byte
		want   string // hex
	}{
		{"label only", "ab", nil, "00000002" + "6162"},
		{"empty field", "a", [][]byte{{}}, "00000001" + "61" + "00000000"},
		{"epoch", "a", [][]byte{e2ee.U32(7)}, "00000001" + "61" + "00000004" + "00000007"},
		{"utf-8 string", "", [][]byte{[]byte("é")}, "00000000" + "00000002" + "c3a9"},
		{"two fields", "l", [][]byte{{0xff}, e2ee.U32(0x01020304)}, "00000001" + "6c" + "00000001" + "ff" + "00000004" + "01020304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hex.EncodeToString(e2ee.Transcript(tt.label, tt.fields...))
			if got != tt.want {
				t.Fatalf("T = %s, want %s", got, tt.want)
			}
		})
	}
	if got := e2ee.LP([]byte("xyz")); !bytes.Equal(got, []byte{0, 0, 0, 3, 'x', 'y', 'z'}) {
		t.Fatalf("LP = %x", got)
	}
	if got := e2ee.U32(0xdeadbeef); !bytes.Equal(got, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Fatalf("u32 = %x", got)
	}
}

func TestDecodeB64U(t *testing.T) {
	tests := []struct {
		in   string
		want string // hex, or "error"
	}{
		{"", ""},
		{"AA", "00"},
		{"AAE", "0001"},
		{"_-8", "ffef"},
		{"AQID", "010203"},
		{"AB", "error"},     // unused bits set: not the canonical encoding of 0x00
		{"AAF", "error"},    // likewise for two bytes
		{"AA==", "error"},   // padding
		{"A", "error"},      // a lone character is no byte
		{"AA\nAA", "error"}, // Go's decoder would skip the newline
		{"AA\rAA", "error"},
		{"+/8", "error"}, // the standard alphabet
		{"AA AA", "error"},
		{"AAé", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b, err := e2ee.DecodeB64U(tt.in)
			if tt.want == "error" {
				wantClass(t, err, "malformed")
				return
			}
			if err != nil || hex.EncodeToString(b) != tt.want {
				t.Fatalf("decoded %x, %v; want %s", b, err, tt.want)
			}
			if e2ee.EncodeB64U(b) != tt.in {
				t.Fatalf("re-encoded %q, want %q", e2ee.EncodeB64U(b), tt.in)
			}
		})
	}
}
