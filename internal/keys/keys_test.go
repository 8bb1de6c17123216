package keys_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/testutil/servicetest"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
)

// TestCheckMessage: what a message of an encrypted chat must be, and the
// code of each refusal, on a real store.
func TestCheckMessage(t *testing.T) {
	ctx := context.Background()
	w := servicetest.MustWorld(t)
	clock := testclock.New(time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC))
	svc := keys.New(keys.Options{Store: w.Store, Ring: w.Ring, Broker: w.Broker, Log: w.Log, Now: clock.Now, MaxMessageBytes: 1000})
	alice, bob := w.MustUser(t, "alice"), w.MustUser(t, "bob")
	c := chat.Chat{Kind: chat.KindGroup, Title: "Ops", CreatedAt: clock.Now(), E2EE: true}
	if _, _, err := w.Store.CreateChat(ctx, &c, []int64{alice.UserID, bob.UserID}, w.Ring.SealMessage, "create"); err != nil {
		t.Fatal(err)
	}
	identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if _, err := svc.PublishIdentity(ctx, alice, identity.Public(), false); err != nil {
		t.Fatal(err)
	}
	dk, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	d, _ := e2ee.Certify(identity, "alice", dk.Device())
	if _, _, err := svc.PublishDevice(ctx, alice, d, "Terminal"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.PublishDevice(ctx, bob, d, "Terminal"); chat.ErrorCode(err) != chat.EInvalid {
		t.Fatalf("bob publishes a device before his identity key: %v", err)
	}
	room := e2ee.NewRoomKey()
	env, _ := e2ee.SealEnvelope(dk, "alice", c.Name, 1, "alice", d, room)
	if err := svc.StartEpoch(ctx, alice, c, keys.StartRequest{Epoch: 1, SenderDevice: d.ID, Envelopes: []e2ee.Envelope{env}}); err != nil {
		t.Fatal(err)
	}
	seal := func(epoch uint32) string {
		text, err := e2ee.EncryptMessage(room, dk, c.Name, epoch, "alice", "c1", []byte(`{"v":1,"text":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	for _, tt := range []struct {
		name string
		who  chat.Identity
		text string
		code string
	}{
		{"a sealed message", alice, seal(1), ""},
		{"plaintext", alice, "hello", chat.EE2EERequired},
		{"an mse1 of the wrong shape", alice, "mse1.1.AAAA", chat.EE2EERequired},
		{"too large", alice, "mse1." + strings.Repeat("A", e2ee.MaxMessageTextBytes(1000)), chat.ETooLarge},
		{"an epoch not started", alice, seal(2), chat.EStaleEpoch},
		{"another user's device", bob, seal(1), chat.EStaleEpoch},
	} {
		if err := svc.CheckMessage(ctx, tt.who, c, tt.text); chat.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.code)
		}
	}
	clock.Advance(chat.EpochMaxAge)
	if err := svc.CheckMessage(ctx, alice, c, seal(1)); chat.ErrorCode(err) != chat.EStaleEpoch {
		t.Fatalf("a week on: %v", err)
	}
	if st, err := svc.Epoch(ctx, c); err != nil || !st.Stale || st.Current != 1 {
		t.Fatalf("state a week on: %+v %v", st, err)
	}
}

// TestInvalidSaysWhatIsWrong: a refusal of internal/e2ee reaches the
// client with what was wrong in it, under the code asked for.
func TestInvalidSaysWhatIsWrong(t *testing.T) {
	_, err := e2ee.ParseMessage("mse1.1.AAAAAAAAAAAAAAAAAAAAAA.AAAA.AAAA.AAAA", 1000)
	got := keys.Invalid(err, chat.EE2EERequired)
	if chat.ErrorCode(got) != chat.EE2EERequired || !strings.Contains(chat.ErrorMessage(got), "iv is 3 bytes, not 12") ||
		strings.Contains(chat.ErrorMessage(got), "e2ee:") {
		t.Fatalf("%v: %q", chat.ErrorCode(got), chat.ErrorMessage(got))
	}
}

// TestCheckDeviceName: names are short plain text.
func TestCheckDeviceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"Chromium on Linux":       true,
		"":                        true,
		strings.Repeat("é", 64):   true,
		strings.Repeat("é", 65):   false,
		"tab\there":               false,
		"\u202egpj.exe":           false,
		string([]byte{0xff, 'a'}): false,
	} {
		if _, err := keys.CheckDeviceName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}
