package e2ee_test

import (
	"bytes"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// fuzzMaxBytes bounds the texts the fuzzer offers ParseMessage.
const fuzzMaxBytes = 1 << 16

// FuzzParseMessage feeds ParseMessage arbitrary texts: it never panics, and
// a text it accepts is well formed and is exactly the String of what it
// returned. Such a text also goes through DecryptMessage, which must refuse
// it without panicking: nobody can sign for the fuzzer's device.
func FuzzParseMessage(f *testing.F) {
	alice := MustParty(f, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
	roomKey := e2ee.NewRoomKey()
	signed, err := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 3, "alice", "c-1", []byte(`{"v":1,"text":"hi"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Fuzz(func(t *testing.T, text string) {
		m, err := e2ee.ParseMessage(text, fuzzMaxBytes)
		if err != nil {
			if m.Epoch != 0 || m.DeviceID != "" || m.IV != nil || m.CT != nil || m.Sig != nil {
				t.Fatalf("a refused text returned %+v", m)
			}
			return
		}
		if len(text) > fuzzMaxBytes || m.Epoch == 0 || len(m.IV) != e2ee.IVSize || len(m.CT) < e2ee.TagSize || len(m.Sig) != e2ee.SignatureSize ||
			e2ee.CheckDeviceID(m.DeviceID) != nil {
			t.Fatalf("accepted %q as %+v", text, m)
		}
		if m.String() != text {
			t.Fatalf("accepted %q, which re-encodes as %q", text, m.String())
		}
		again, err := e2ee.ParseMessage(m.String(), len(text))
		if err != nil || again.Epoch != m.Epoch || again.DeviceID != m.DeviceID ||
			!bytes.Equal(again.IV, m.IV) || !bytes.Equal(again.CT, m.CT) || !bytes.Equal(again.Sig, m.Sig) {
			t.Fatalf("parsed again as %+v, %v", again, err)
		}
		if _, err := e2ee.ParseMessage(text, len(text)-1); errorClass(err) != "too_large" {
			t.Fatalf("one byte under its length: %v", err)
		}
		_, err = e2ee.DecryptMessage(roomKey, alice.device, "group:g1", "alice", "c-1", text)
		switch {
		case m.DeviceID != alice.device.ID && errorClass(err) != "wrong_device":
			t.Fatalf("decrypting another device's text: %v", err)
		case err == nil && text != signed:
			t.Fatalf("opened %q, which alice did not sign", text)
		}
	})
}
