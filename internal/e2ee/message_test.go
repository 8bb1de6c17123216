package e2ee_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

const plaintext = `{"v":1,"text":"Deploy at **ten** ✓","rev":0}`

func TestMessageRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			alice := MustParty(t, "alice", s.sigAlg, s.dhAlg)
			roomKey := e2ee.NewRoomKey()
			text, err := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 12, "Alice", "c-1", []byte(plaintext))
			if err != nil {
				t.Fatal(err)
			}
			m, err := e2ee.ParseMessage(text, e2ee.MaxMessageTextBytes(len(plaintext)))
			if err != nil {
				t.Fatal(err)
			}
			if m.Epoch != 12 || m.DeviceID != alice.device.ID || len(m.CT) != len(plaintext)+e2ee.TagSize || m.String() != text {
				t.Fatalf("parsed %+v from %s", m, text)
			}
			got, err := e2ee.DecryptMessage(roomKey, alice.device, "group:g1", "alice", "c-1", text)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != plaintext {
				t.Fatalf("decrypted %s", got)
			}
			// Two encryptions of one message differ: each draws its IV.
			again, _ := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 12, "alice", "c-1", []byte(plaintext))
			if again == text {
				t.Fatal("the same text twice")
			}
		})
	}
}

// TestMessageTampering decrypts altered messages: each must be refused,
// for the reason a client shows beside it.
func TestMessageTampering(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			alice := MustParty(t, "alice", s.sigAlg, s.dhAlg)
			bob := MustParty(t, "bob", s.sigAlg, s.dhAlg)
			roomKey, nextKey := e2ee.NewRoomKey(), e2ee.NewRoomKey()
			text, err := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 5, "alice", "c-1", []byte(plaintext))
			if err != nil {
				t.Fatal(err)
			}
			m, _ := e2ee.ParseMessage(text, len(text))
			other, _ := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 5, "alice", "c-2", []byte(`{"v":1,"text":"other"}`))
			om, _ := e2ee.ParseMessage(other, len(other))
			alter := func(f func(m *e2ee.SealedMessage)) string {
				c := m
				f(&c)
				return c.String()
			}
			// resign signs an altered message again with alice's device,
			// with this file's reading of the transcript.
			resign := func(c e2ee.SealedMessage, chat, clientID string) string {
				aad := refT("mapsim-e2ee/v1/message", []byte(chat), refU32(c.Epoch), refUser("alice"), []byte(c.DeviceID), []byte(clientID))
				sig, err := alice.keys.Sig.Sign(append(append(aad, refLP(c.IV)...), refLP(c.CT)...))
				if err != nil {
					t.Fatal(err)
				}
				c.Sig = sig
				return c.String()
			}
			otherAAD := refT("mapsim-e2ee/v1/message", []byte("group:g2"), refU32(5), refUser("alice"), []byte(alice.device.ID), []byte("c-1"))
			sealedElsewhere := m
			sealedElsewhere.CT = refGCM(t, roomKey[:]).Seal(nil, m.IV, []byte(plaintext), otherAAD)

			tests := []struct {
				name     string
				key      [32]byte
				sender   e2ee.Device
				chat     string
				user     string
				clientID string
				text     string
				want     string
			}{
				{"as sent", roomKey, alice.device, "group:g1", "alice", "c-1", text, "ok"},
				{"sender in another case", roomKey, alice.device, "group:g1", "ALICE", "c-1", text, "ok"},
				{"re-signed unchanged", roomKey, alice.device, "group:g1", "alice", "c-1", resign(m, "group:g1", "c-1"), "ok"},
				{"in another chat", roomKey, alice.device, "group:g2", "alice", "c-1", text, "bad_signature"},
				{"AEAD under another chat, signed for this one", roomKey, alice.device, "group:g1", "alice", "c-1", resign(sealedElsewhere, "group:g1", "c-1"), "altered"},
				{"under another epoch", nextKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.Epoch = 6 }), "bad_signature"},
				{"another epoch, signed again", nextKey, alice.device, "group:g1", "alice", "c-1", resign(func() e2ee.SealedMessage { c := m; c.Epoch = 6; return c }(), "group:g1", "c-1"), "altered"},
				{"as another message", roomKey, alice.device, "group:g1", "alice", "c-2", text, "bad_signature"},
				{"from another user", roomKey, alice.device, "group:g1", "bob", "c-1", text, "bad_signature"},
				{"checked against bob's device", roomKey, bob.device, "group:g1", "alice", "c-1", text, "wrong_device"},
				{"bob's device id on alice's message", roomKey, bob.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.DeviceID = bob.device.ID }), "bad_signature"},
				{"flipped bit in ct", roomKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.CT = flip(m.CT, 3) }), "bad_signature"},
				{"flipped bit in ct, signed again", roomKey, alice.device, "group:g1", "alice", "c-1", resign(func() e2ee.SealedMessage { c := m; c.CT = flip(c.CT, 3); return c }(), "group:g1", "c-1"), "altered"},
				{"flipped bit in iv", roomKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.IV = flip(m.IV, 0) }), "bad_signature"},
				{"flipped bit in sig", roomKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.Sig = flip(m.Sig, 63) }), "bad_signature"},
				{"another message's signature", roomKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.Sig = om.Sig }), "bad_signature"},
				{"another message's ct", roomKey, alice.device, "group:g1", "alice", "c-1", alter(func(m *e2ee.SealedMessage) { m.CT, m.IV = om.CT, om.IV }), "bad_signature"},
				{"wrong room key", nextKey, alice.device, "group:g1", "alice", "c-1", text, "altered"},
				{"empty client id", roomKey, alice.device, "group:g1", "alice", "", text, "malformed"},
				{"not an mse1 text", roomKey, alice.device, "group:g1", "alice", "c-1", "hello", "malformed"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := e2ee.DecryptMessage(tt.key, tt.sender, tt.chat, tt.user, tt.clientID, tt.text)
					wantClass(t, err, tt.want)
					if err == nil && string(got) != plaintext {
						t.Fatalf("decrypted %s", got)
					}
					if err != nil && got != nil {
						t.Fatal("a refused message returned plaintext")
					}
				})
			}
		})
	}
}

func TestEncryptMessageRefuses(t *testing.T) {
	alice := MustParty(t, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
	key := e2ee.NewRoomKey()
	tests := []struct {
		name                        string
		chat, user, clientID, plain string
		epoch                       uint32
	}{
		{"plaintext not JSON", "group:g1", "alice", "c-1", "hello", 1},
		{"plaintext a JSON array", "group:g1", "alice", "c-1", `[1]`, 1},
		{"plaintext truncated JSON", "group:g1", "alice", "c-1", `{"v":1`, 1},
		{"epoch 0", "group:g1", "alice", "c-1", plaintext, 0},
		{"no chat", "", "alice", "c-1", plaintext, 1},
		{"chat not UTF-8", "group:\xff", "alice", "c-1", plaintext, 1},
		{"no client id", "group:g1", "alice", "", plaintext, 1},
		{"username with a control character", "group:g1", "a\x1blice", "c-1", plaintext, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e2ee.EncryptMessage(key, alice.keys, tt.chat, tt.epoch, tt.user, tt.clientID, []byte(tt.plain))
			wantClass(t, err, "malformed")
		})
	}
}

func TestParseMessage(t *testing.T) {
	id := e2ee.EncodeB64U(bytes.Repeat([]byte{7}, 16))
	iv := e2ee.EncodeB64U(make([]byte, 12))
	ct := e2ee.EncodeB64U(make([]byte, 16))
	sig := e2ee.EncodeB64U(bytes.Repeat([]byte{9}, 64))
	good := "mse1.1." + id + "." + iv + "." + ct + "." + sig
	tests := []struct {
		name string
		text string
		max  int
		want string
	}{
		{"shortest", good, 1000, "ok"},
		{"largest epoch", "mse1.4294967295." + id + "." + iv + "." + ct + "." + sig, 1000, "ok"},
		{"exactly at the bound", good, len(good), "ok"},
		{"one byte over the bound", good, len(good) - 1, "too_large"},
		{"epoch 0", "mse1.0." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"epoch with a leading zero", "mse1.01." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"epoch 2^32", "mse1.4294967296." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"epoch with a sign", "mse1.+1." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"epoch empty", "mse1.." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"epoch in hex", "mse1.0x1." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"other prefix", "mse2.1." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"upper-case prefix", "MSE1.1." + id + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"missing field", "mse1.1." + id + "." + iv + "." + ct, 1000, "malformed"},
		{"extra field", good + ".AA", 1000, "malformed"},
		{"trailing dot", good + ".", 1000, "malformed"},
		{"device id of 15 bytes", "mse1.1." + e2ee.EncodeB64U(make([]byte, 15)) + "." + iv + "." + ct + "." + sig, 1000, "malformed"},
		{"iv of 13 bytes", "mse1.1." + id + "." + e2ee.EncodeB64U(make([]byte, 13)) + "." + ct + "." + sig, 1000, "malformed"},
		{"ct shorter than a tag", "mse1.1." + id + "." + iv + "." + e2ee.EncodeB64U(make([]byte, 15)) + "." + sig, 1000, "malformed"},
		{"sig of 63 bytes", "mse1.1." + id + "." + iv + "." + ct + "." + e2ee.EncodeB64U(make([]byte, 63)), 1000, "malformed"},
		{"padding", "mse1.1." + id + "." + iv + "." + ct + "==." + sig, 1000, "malformed"},
		{"standard alphabet", "mse1.1." + id + "." + iv + "." + strings.Replace(ct, "A", "+", 1) + "." + sig, 1000, "malformed"},
		{"line break in ct", "mse1.1." + id + "." + iv + ".AAAA\nAAAAAAAAAAAAAAAAAA." + sig, 1000, "malformed"},
		{"non-canonical last character", "mse1.1." + id + "." + iv + "." + ct[:len(ct)-1] + "B." + sig, 1000, "malformed"},
		{"plain text", "hello", 1000, "malformed"},
		{"empty", "", 1000, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e2ee.ParseMessage(tt.text, tt.max)
			wantClass(t, err, tt.want)
			if err == nil && m.String() != tt.text {
				t.Fatalf("round trip %q, want %q", m.String(), tt.text)
			}
		})
	}
}

func TestMaxMessageTextBytes(t *testing.T) {
	tests := []struct{ in, want int }{
		{8192, 10923 + 1024}, // ceil(8192 × 4/3) = 10923
		{3, 4 + 1024},
		{64, 86 + 1024}, // ceil(85.33…)
		{1 << 20, 1398102 + 1024},
	}
	for _, tt := range tests {
		if got := e2ee.MaxMessageTextBytes(tt.in); got != tt.want {
			t.Errorf("MaxMessageTextBytes(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
	// A message of MAX_MESSAGE_BYTES of plaintext fits the bound.
	alice := MustParty(t, "alice", e2ee.AlgP256, e2ee.AlgP256)
	plain := []byte(`{"v":1,"text":"` + strings.Repeat("x", 8192-len(`{"v":1,"text":""}`)) + `"}`)
	text, err := e2ee.EncryptMessage(e2ee.NewRoomKey(), alice.keys, "group:"+strings.Repeat("g", 40), 4294967295, "alice", strings.Repeat("c", 64), plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2ee.ParseMessage(text, e2ee.MaxMessageTextBytes(len(plain))); err != nil {
		t.Fatalf("a full-size message of %d bytes is refused: %v", len(text), err)
	}
}
