package e2eeclient

import (
	"context"
	"errors"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// localChat is a chat whose member devices and room key are already known,
// so Decrypt needs no server.
func localChat(t testing.TB) (*Chat, *e2ee.DeviceKeys, [e2ee.KeySize]byte) {
	t.Helper()
	identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	device, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	bobID, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	bobDev, _ := e2ee.NewDeviceKeys(e2ee.AlgP256, e2ee.AlgP256)
	cert, err := e2ee.Certify(bobID, "bob", bobDev.Device())
	if err != nil {
		t.Fatal(err)
	}
	st := NewState(identity, device)
	st.CheckIdentity("bob", bobID.Public())
	key := e2ee.NewRoomKey()
	st.SetRoomKey("group:x", 1, RoomKey{Key: key})
	c := &Chat{
		acct: &Account{Username: "alice", State: st}, Name: "group:x",
		members:    map[string]*member{"bob": {username: "bob", devices: map[string]e2ee.Device{bobDev.ID: cert}, all: 1}},
		others:     map[string]*member{},
		noEnvelope: map[uint32]bool{2: true}, counted: map[uint32]map[int64]bool{},
		looked: map[string]bool{"bob": true, "mallory": true},
	}
	return c, bobDev, key
}

func reason(err error) string {
	var d *DecryptError
	if errors.As(err, &d) {
		return d.Reason
	}
	return "not a DecryptError: " + err.Error()
}

// TestDecryptReasons: a message opens once; the same client id under
// another message id is a replay; an edit must raise rev; a tampered
// ciphertext, a foreign device, a missing epoch key and a wrong sender
// each say why.
func TestDecryptReasons(t *testing.T) {
	ctx := context.Background()
	c, bob, key := localChat(t)
	seal := func(epoch uint32, clientID, plain string) string {
		s, err := e2ee.EncryptMessage(key, bob, "group:x", epoch, "bob", clientID, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	text := seal(1, "c1", `{"v":1,"text":"hello"}`)
	got, err := c.Decrypt(ctx, Message{ID: 10, Username: "bob", ClientID: "c1", Text: text})
	if err != nil || got.Text != "hello" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 10, Username: "bob", ClientID: "c1", Text: text}); err != nil {
		t.Fatalf("the same message loaded again: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 11, Username: "bob", ClientID: "c1", Text: text}); reason(err) != ReasonReplay {
		t.Fatalf("replay under a new id: %v", err)
	}
	edit := seal(1, "c1", `{"v":1,"text":"hello!","rev":1}`)
	if got, err := c.Decrypt(ctx, Message{ID: 10, Username: "bob", ClientID: "c1", Text: edit, Edit: true}); err != nil || got.Text != "hello!" {
		t.Fatalf("edit: %+v %v", got, err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 10, Username: "bob", ClientID: "c1", Text: edit, Edit: true}); reason(err) != ReasonReplay {
		t.Fatalf("the same edit again: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 10, Username: "bob", ClientID: "c1", Text: text}); reason(err) != ReasonReplay {
		t.Fatalf("the older version after the edit: %v", err)
	}

	m, _ := e2ee.ParseMessage(seal(1, "c2", `{"v":1,"text":"x"}`), 1<<20)
	m.CT[0] ^= 1
	if _, err := c.Decrypt(ctx, Message{ID: 12, Username: "bob", ClientID: "c2", Text: m.String()}); reason(err) != ReasonBadSignature {
		t.Fatalf("flipped bit: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 13, Username: "bob", ClientID: "other", Text: seal(1, "c3", `{"v":1,"text":"x"}`)}); reason(err) != ReasonBadSignature {
		t.Fatalf("another client id: %v", err)
	}
	stranger, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	s, _ := e2ee.EncryptMessage(key, stranger, "group:x", 1, "bob", "c4", []byte(`{"v":1,"text":"x"}`))
	if _, err := c.Decrypt(ctx, Message{ID: 14, Username: "bob", ClientID: "c4", Text: s}); reason(err) != ReasonUnknownDevice {
		t.Fatalf("a device bob's identity did not certify: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 15, Username: "mallory", ClientID: "c5", Text: seal(1, "c5", `{"v":1,"text":"x"}`)}); reason(err) != ReasonUnknownDevice {
		t.Fatalf("bob's message passed off as mallory's: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 16, Username: "bob", ClientID: "c6", Text: seal(2, "c6", `{"v":1,"text":"x"}`)}); reason(err) != ReasonMissingEpochKey {
		t.Fatalf("an epoch without a key: %v", err)
	}
	wrongKey := e2ee.NewRoomKey()
	s, _ = e2ee.EncryptMessage(wrongKey, bob, "group:x", 1, "bob", "c7", []byte(`{"v":1,"text":"x"}`))
	if _, err := c.Decrypt(ctx, Message{ID: 17, Username: "bob", ClientID: "c7", Text: s}); reason(err) != ReasonAltered {
		t.Fatalf("another room key: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 18, Username: "bob", ClientID: "c8", Text: "mse1.garbage"}); reason(err) != ReasonMalformed {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := c.Decrypt(ctx, Message{ID: 19, Username: "bob", ClientID: "c9", Text: seal(1, "c9", `{"v":2,"text":"x"}`)}); reason(err) != ReasonMalformed {
		t.Fatalf("version 2 plaintext: %v", err)
	}
}

// TestLocallyStale: the client itself counts an epoch stale after 100
// messages or when the member devices differ from those it was made for.
func TestLocallyStale(t *testing.T) {
	c, _, key := localChat(t)
	k := RoomKey{Key: key, Devices: c.deviceSet()}
	if c.locallyStale(1, k) {
		t.Fatal("a fresh epoch is stale")
	}
	c.counted[1] = map[int64]bool{}
	for i := range EpochMessages {
		c.counted[1][int64(i)] = true
	}
	if !c.locallyStale(1, k) {
		t.Fatal("100 messages did not make the epoch stale")
	}
	delete(c.counted, 1)
	d, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	c.members["carol"] = &member{username: "carol", devices: map[string]e2ee.Device{d.ID: d.Device()}}
	if !c.locallyStale(1, k) {
		t.Fatal("a new member's device did not make the epoch stale")
	}
}
