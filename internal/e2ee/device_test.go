package e2ee_test

import (
	"encoding/json"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

func TestVerifyDevice(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			alice := MustParty(t, "alice", s.sigAlg, s.dhAlg)
			bob := MustParty(t, "bob", s.sigAlg, s.dhAlg)
			id := alice.identity.Public()
			other, _ := e2ee.NewDeviceKeys(s.dhAlg, s.sigAlg)
			swap := func(change func(d *e2ee.Device)) e2ee.Device {
				d := alice.device
				change(&d)
				return d
			}
			tests := []struct {
				name     string
				identity e2ee.PublicKey
				username string
				device   e2ee.Device
				want     string
			}{
				{"as certified", id, "alice", alice.device, "ok"},
				{"username in another case", id, "ALICE", alice.device, "ok"},
				{"another user's name", id, "mallory", alice.device, "bad_certificate"},
				{"another identity key", bob.identity.Public(), "alice", alice.device, "bad_certificate"},
				{"flipped certificate bit", id, "alice", swap(func(d *e2ee.Device) { d.Cert = flip(d.Cert, 10) }), "bad_certificate"},
				{"another agreement key", id, "alice", swap(func(d *e2ee.Device) { d.DH = other.DH.Public() }), "bad_certificate"},
				{"another signing key", id, "alice", swap(func(d *e2ee.Device) { d.Sig = other.Sig.Public() }), "bad_certificate"},
				{"another device id", id, "alice", swap(func(d *e2ee.Device) { d.ID = other.ID }), "bad_certificate"},
				{"bob's certificate", id, "alice", swap(func(d *e2ee.Device) { d.Cert = bob.device.Cert }), "bad_certificate"},
				{"short certificate", id, "alice", swap(func(d *e2ee.Device) { d.Cert = d.Cert[:63] }), "malformed"},
				{"no certificate", id, "alice", swap(func(d *e2ee.Device) { d.Cert = nil }), "malformed"},
				{"device id of 15 bytes", id, "alice", swap(func(d *e2ee.Device) { d.ID = e2ee.EncodeB64U(make([]byte, 15)) }), "malformed"},
				{"device id padded", id, "alice", swap(func(d *e2ee.Device) { d.ID += "==" }), "malformed"},
				{"signing key as agreement key", id, "alice", swap(func(d *e2ee.Device) { d.DH = d.Sig }), pickClass(s.sigAlg == e2ee.AlgP256, "bad_certificate", "malformed")},
				{"control character in the username", id, "ali\x01ce", alice.device, "malformed"},
				{"empty username", id, "", alice.device, "malformed"},
				{"identity key of no algorithm", e2ee.PublicKey{Alg: "none", Pub: id.Pub}, "alice", alice.device, "malformed"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					wantClass(t, e2ee.VerifyDevice(tt.identity, tt.username, tt.device), tt.want)
				})
			}
		})
	}
}

// pickClass returns a when cond holds, else b.
func pickClass(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// TestCertifyIgnoresCase certifies under one spelling of a username and
// verifies under another: usernames are unique ignoring case, so both name
// the same user.
func TestCertifyIgnoresCase(t *testing.T) {
	identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	keys, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	d, err := e2ee.Certify(identity, "Alice", keys.Device())
	if err != nil {
		t.Fatal(err)
	}
	if err := e2ee.VerifyDevice(identity.Public(), "aLICE", d); err != nil {
		t.Fatal(err)
	}
	// Certify checks what it signs: a device with a bad key is not
	// certified.
	bad := keys.Device()
	bad.DH.Pub = bad.DH.Pub[:5]
	_, err = e2ee.Certify(identity, "alice", bad)
	wantClass(t, err, "malformed")
}

func TestDeviceJSON(t *testing.T) {
	alice := MustParty(t, "alice", e2ee.AlgEd25519, e2ee.AlgX25519)
	data, err := json.Marshal(alice.device)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"device_id", "dh", "sig", "cert"} {
		if _, ok := fields[name]; !ok {
			t.Fatalf("no %q in %s", name, data)
		}
	}
	var back e2ee.Device
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if err := e2ee.VerifyDevice(alice.identity.Public(), "alice", back); err != nil {
		t.Fatal(err)
	}
	wantClass(t, json.Unmarshal([]byte(`{"device_id":"x","cert":"a+b"}`), &back), "malformed")
}
