package e2ee_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// BenchmarkEncryptDecrypt1KiB sends and opens a message of 1 KiB of
// plaintext: what every message costs a client, signature included.
func BenchmarkEncryptDecrypt1KiB(b *testing.B) {
	plain := []byte(`{"v":1,"text":"` + strings.Repeat("x", 1024-len(`{"v":1,"text":""}`)) + `"}`)
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			alice := MustParty(b, "alice", s.sigAlg, s.dhAlg)
			roomKey := e2ee.NewRoomKey()
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				text, err := e2ee.EncryptMessage(roomKey, alice.keys, "group:g1", 1, "alice", "c-1", plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e2ee.DecryptMessage(roomKey, alice.device, "group:g1", "alice", "c-1", text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealOpenEnvelope makes and opens one room-key envelope: a new
// epoch costs this once per member device.
func BenchmarkSealOpenEnvelope(b *testing.B) {
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			alice := MustParty(b, "alice", s.sigAlg, s.dhAlg)
			bob := MustParty(b, "bob", s.sigAlg, s.dhAlg)
			roomKey := e2ee.NewRoomKey()
			for b.Loop() {
				env, err := e2ee.SealEnvelope(alice.keys, "alice", "group:g1", 1, "bob", bob.device, roomKey)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e2ee.OpenEnvelope(bob.keys, "bob", "group:g1", 1, alice.device, "alice", env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFile1MiB encrypts and decrypts a file of 1 MiB.
func BenchmarkFile1MiB(b *testing.B) {
	plain := filePlain(1 << 20)
	key, prefix := e2ee.NewFileKey()
	var ct bytes.Buffer
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		ct.Reset()
		w := e2ee.NewFileWriter(&ct, key, prefix)
		if _, err := w.Write(plain); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, e2ee.NewFileReader(bytes.NewReader(ct.Bytes()), key, prefix, w.CiphertextSHA256())); err != nil {
			b.Fatal(err)
		}
	}
}
