package e2ee_test

import (
	"encoding/json"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			alice := MustParty(t, "alice", s.sigAlg, s.dhAlg)
			bob := MustParty(t, "bob", s.sigAlg, s.dhAlg)
			roomKey := e2ee.NewRoomKey()
			for _, to := range []party{bob, alice} { // the sender's own device gets one too
				env, err := e2ee.SealEnvelope(alice.keys, "alice", "group:g1", 3, to.username, to.device, roomKey)
				if err != nil {
					t.Fatal(err)
				}
				if err := e2ee.VerifyEnvelope(alice.device, "alice", "group:g1", 3, env); err != nil {
					t.Fatal(err)
				}
				got, err := e2ee.OpenEnvelope(to.keys, to.username, "group:g1", 3, alice.device, "alice", env)
				if err != nil {
					t.Fatal(err)
				}
				if got != roomKey {
					t.Fatalf("opened %x, want %x", got, roomKey)
				}
			}
		})
	}
	// Devices of one chat may differ in algorithm: each envelope follows
	// its recipient's agreement key.
	t.Run("mixed", func(t *testing.T) {
		alice := MustParty(t, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
		bob := MustParty(t, "bob", e2ee.AlgP256, e2ee.AlgP256)
		roomKey := e2ee.NewRoomKey()
		env, err := e2ee.SealEnvelope(alice.keys, "alice", "direct:1:2", 1, "bob", bob.device, roomKey)
		if err != nil {
			t.Fatal(err)
		}
		if len(env.EphPub) != e2ee.P256PublicKeySize {
			t.Fatalf("ephemeral key of %d bytes for a p256 recipient", len(env.EphPub))
		}
		got, err := e2ee.OpenEnvelope(bob.keys, "bob", "direct:1:2", 1, alice.device, "alice", env)
		if err != nil || got != roomKey {
			t.Fatalf("opened %x, %v", got, err)
		}
	})
}

// TestEnvelopeTampering opens and checks altered envelopes: each must be
// refused, and for the reason a client would show.
func TestEnvelopeTampering(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			alice := MustParty(t, "alice", s.sigAlg, s.dhAlg)
			bob := MustParty(t, "bob", s.sigAlg, s.dhAlg)
			carol := MustParty(t, "carol", s.sigAlg, s.dhAlg)
			bob2 := MustPartyWith(t, "bob", bob.identity, s.dhAlg, s.sigAlg)
			roomKey := e2ee.NewRoomKey()
			env, err := e2ee.SealEnvelope(alice.keys, "alice", "group:g1", 3, "bob", bob.device, roomKey)
			if err != nil {
				t.Fatal(err)
			}
			toCarol, err := e2ee.SealEnvelope(alice.keys, "alice", "group:g1", 3, "carol", carol.device, roomKey)
			if err != nil {
				t.Fatal(err)
			}
			change := func(f func(e *e2ee.Envelope)) e2ee.Envelope {
				e := env
				f(&e)
				return e
			}
			// resign signs an altered envelope again with alice's device, as
			// a sender who made it so would: the signature then holds and the
			// ciphertext must fail on its own.
			resign := func(e e2ee.Envelope, chat string) e2ee.Envelope {
				t.Helper()
				e.Sig = signEnvelope(t, alice, chat, 3, e)
				return e
			}
			tests := []struct {
				name       string
				chat       string
				epoch      uint32
				sender     e2ee.Device
				senderName string
				recipient  party
				env        e2ee.Envelope
				verify     string // the server's check
				open       string // the recipient's
			}{
				{"as sealed", "group:g1", 3, alice.device, "alice", bob, env, "ok", "ok"},
				{"recipient name in another case", "group:g1", 3, alice.device, "ALICE", bob, change(func(e *e2ee.Envelope) { e.Recipient = "Bob" }), "ok", "ok"},
				{"flipped bit in ct", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.CT = flip(e.CT, 0) }), "bad_signature", "bad_signature"},
				{"flipped bit in ct, signed again", "group:g1", 3, alice.device, "alice", bob, resign(change(func(e *e2ee.Envelope) { e.CT = flip(e.CT, 47) }), "group:g1"), "ok", "altered"},
				{"flipped bit in iv", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.IV = flip(e.IV, 11) }), "bad_signature", "bad_signature"},
				{"flipped bit in iv, signed again", "group:g1", 3, alice.device, "alice", bob, resign(change(func(e *e2ee.Envelope) { e.IV = flip(e.IV, 11) }), "group:g1"), "ok", "altered"},
				{"flipped bit in eph_pub", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.EphPub = flip(e.EphPub, 7) }), pickClass(s.dhAlg == e2ee.AlgP256, "malformed", "bad_signature"), pickClass(s.dhAlg == e2ee.AlgP256, "malformed", "bad_signature")},
				{"flipped bit in sig", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.Sig = flip(e.Sig, 33) }), "bad_signature", "bad_signature"},
				{"checked for another chat", "group:g2", 3, alice.device, "alice", bob, env, "bad_signature", "bad_signature"},
				{"AEAD for another chat, signed for this one", "group:g1", 3, alice.device, "alice", bob, resign(sealFor(t, alice, "group:g2", bob, roomKey), "group:g1"), "ok", "altered"},
				{"checked for another epoch", "group:g1", 4, alice.device, "alice", bob, env, "bad_signature", "bad_signature"},
				{"from another sender's name", "group:g1", 3, alice.device, "mallory", bob, env, "bad_signature", "bad_signature"},
				{"from another device", "group:g1", 3, carol.device, "alice", bob, env, "bad_signature", "bad_signature"},
				{"another recipient's envelope", "group:g1", 3, alice.device, "alice", bob, toCarol, "ok", "wrong_device"},
				{"the user's other device", "group:g1", 3, alice.device, "alice", bob2, env, "ok", "wrong_device"},
				{"readdressed to bob", "group:g1", 3, alice.device, "alice", bob, func() e2ee.Envelope {
					e := toCarol
					e.Recipient, e.RecipientDevice = "bob", bob.device.ID
					return e
				}(), "bad_signature", "bad_signature"},
				{"readdressed and signed again", "group:g1", 3, alice.device, "alice", bob, func() e2ee.Envelope {
					e := toCarol
					e.Recipient, e.RecipientDevice = "bob", bob.device.ID
					return resign(e, "group:g1")
				}(), "ok", "altered"},
				{"short iv", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.IV = e.IV[:11] }), "malformed", "malformed"},
				{"long ct", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.CT = append(e.CT, 0) }), "malformed", "malformed"},
				{"no eph_pub", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.EphPub = nil }), "malformed", "malformed"},
				{"epoch 0", "group:g1", 0, alice.device, "alice", bob, env, "malformed", "malformed"},
				{"empty chat", "", 3, alice.device, "alice", bob, env, "malformed", "malformed"},
				{"bad recipient device id", "group:g1", 3, alice.device, "alice", bob, change(func(e *e2ee.Envelope) { e.RecipientDevice = "bob's phone" }), "malformed", "malformed"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					wantClass(t, e2ee.VerifyEnvelope(tt.sender, tt.senderName, tt.chat, tt.epoch, tt.env), tt.verify)
					got, err := e2ee.OpenEnvelope(tt.recipient.keys, tt.recipient.username, tt.chat, tt.epoch, tt.sender, tt.senderName, tt.env)
					wantClass(t, err, tt.open)
					if err == nil && got != roomKey {
						t.Fatalf("opened %x, want %x", got, roomKey)
					}
					if err != nil && got != [32]byte{} {
						t.Fatal("a refused envelope returned key material")
					}
				})
			}
		})
	}
}

// sealFor seals roomKey from p to recipient for chat's epoch 3.
func sealFor(tb testing.TB, p party, chat string, recipient party, roomKey [32]byte) e2ee.Envelope {
	tb.Helper()
	env, err := e2ee.SealEnvelope(p.keys, p.username, chat, 3, recipient.username, recipient.device, roomKey)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// signEnvelope signs e as p's device would for chat's epoch, following
// E2EE.md with this file's own transcript, not the package's.
func signEnvelope(tb testing.TB, p party, chat string, epoch uint32, e e2ee.Envelope) []byte {
	tb.Helper()
	sig, err := p.keys.Sig.Sign(refT("mapsim-e2ee/v1/room-key-envelope", []byte(chat), refU32(epoch), refUser(p.username),
		[]byte(p.keys.ID), refUser(e.Recipient), []byte(e.RecipientDevice), e.EphPub, e.IV, e.CT))
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

func TestEnvelopeJSON(t *testing.T) {
	alice := MustParty(t, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
	env, err := e2ee.SealEnvelope(alice.keys, "alice", "group:g1", 1, "alice", alice.device, e2ee.NewRoomKey())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]string
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 6 || fields["recipient"] != "alice" || fields["recipient_device"] != alice.device.ID || fields["eph_pub"] != e2ee.EncodeB64U(env.EphPub) {
		t.Fatalf("JSON %s", data)
	}
	var back e2ee.Envelope
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if err := e2ee.VerifyEnvelope(alice.device, "alice", "group:g1", 1, back); err != nil {
		t.Fatal(err)
	}
	wantClass(t, json.Unmarshal([]byte(`{"recipient":"a","iv":"AAAA\n"}`), &back), "malformed")
}

func TestSealEnvelopeRefuses(t *testing.T) {
	alice := MustParty(t, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
	bob := MustParty(t, "bob", e2ee.AlgEd25519, e2ee.AlgX25519)
	device := func(f func(d *e2ee.Device)) e2ee.Device {
		d := bob.device
		f(&d)
		return d
	}
	tests := []struct {
		name      string
		chat      string
		epoch     uint32
		sender    string
		recipient string
		device    e2ee.Device
	}{
		{"no chat", "", 1, "alice", "bob", bob.device},
		{"epoch 0", "group:g1", 0, "alice", "bob", bob.device},
		{"no sender name", "group:g1", 1, "", "bob", bob.device},
		{"recipient name with a control character", "group:g1", 1, "alice", "b\x7fob", bob.device},
		{"recipient without an agreement key", "group:g1", 1, "alice", "bob", device(func(d *e2ee.Device) { d.DH = e2ee.PublicKey{} })},
		{"recipient agreement key of no algorithm", "group:g1", 1, "alice", "bob", device(func(d *e2ee.Device) { d.DH.Alg = "x448" })},
		{"recipient without a device id", "group:g1", 1, "alice", "bob", device(func(d *e2ee.Device) { d.ID = "" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e2ee.SealEnvelope(alice.keys, tt.sender, tt.chat, tt.epoch, tt.recipient, tt.device, e2ee.NewRoomKey())
			wantClass(t, err, "malformed")
		})
	}
}
