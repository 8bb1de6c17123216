package e2eeclient

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// BenchmarkSealAndOpen: a 1 KiB message sealed by one client and opened
// by another (device trust, signature, tag, replay record), as the
// terminal client does for each line typed and each message shown.
func BenchmarkSealAndOpen(b *testing.B) {
	c, bob, key := localChat(b)
	sender := &Chat{acct: &Account{Username: "bob", State: NewState(nil, bob)}, Name: "group:x"}
	ctx := context.Background()
	content := Content{Text: strings.Repeat("x", 1024)}
	b.ResetTimer()
	for i := range b.N {
		id := "cli-" + strconv.Itoa(i)
		text, err := sender.sealMessage(1, key, id, content)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decrypt(ctx, Message{ID: int64(i), Username: "bob", ClientID: id, Text: text}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartEpoch50: a new epoch's envelopes for 50 member devices.
func BenchmarkStartEpoch50(b *testing.B) {
	c, _, _ := localChat(b)
	for i := range 49 {
		d, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
		name := "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		c.members[name] = &member{username: name, devices: map[string]e2ee.Device{d.ID: d.Device()}}
	}
	key := e2ee.NewRoomKey()
	b.ResetTimer()
	for range b.N {
		envs, err := c.sealEnvelopes(2, key)
		if err != nil || len(envs) != 50 {
			b.Fatal(len(envs), err)
		}
	}
}

// BenchmarkKeyFileSave: writing the key file (encrypt, write, fsync,
// rename) with 100 room keys, which the client does after each change.
func BenchmarkKeyFileSave(b *testing.B) {
	st := NewState(mustKey(b), mustDevice(b))
	for i := range 100 {
		st.SetRoomKey("group:x", uint32(i+1), RoomKey{Key: e2ee.NewRoomKey()})
	}
	kf := NewKeyFile(filepath.Join(b.TempDir(), "k.json"), "http://x", "alice", e2ee.NewBackupKDF(), e2ee.NewRoomKey())
	b.ResetTimer()
	for range b.N {
		if err := kf.Save(st); err != nil {
			b.Fatal(err)
		}
	}
}

func mustKey(b *testing.B) *e2ee.SigningKey {
	k, err := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func mustDevice(b *testing.B) *e2ee.DeviceKeys {
	d, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkOpenKeyFile: opening the key file with the passphrase at the
// start of the client, PBKDF2-SHA-256 with 600,000 iterations included.
func BenchmarkOpenKeyFile(b *testing.B) {
	kdf := e2ee.NewBackupKDF()
	key, err := kdf.Key("a passphrase")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "k.json")
	if err := NewKeyFile(path, "http://x", "alice", kdf, key).Save(NewState(mustKey(b), mustDevice(b))); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := OpenKeyFile(path, "http://x", "alice", "a passphrase"); err != nil {
			b.Fatal(err)
		}
	}
}
