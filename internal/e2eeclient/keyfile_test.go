package e2eeclient_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/e2eeclient"
)

func mustState(t *testing.T) *e2eeclient.State {
	t.Helper()
	id, err := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	return e2eeclient.NewState(id, dev)
}

// TestKeyFileRoundTrip: a saved key file opens with the passphrase and
// gives back every key, pin and replay record; it is mode 0600 in a 0700
// folder, and holds none of its keys in plain.
func TestKeyFileRoundTrip(t *testing.T) {
	const server, pass = "http://127.0.0.1:8000", "correct horse battery staple"
	path := filepath.Join(t.TempDir(), "keys", "alice.json")
	kdf := e2ee.NewBackupKDF()
	key, err := kdf.Key(pass)
	if err != nil {
		t.Fatal(err)
	}
	st := mustState(t)
	roomKey := e2ee.NewRoomKey()
	st.SetRoomKey("direct:1:2", 3, e2eeclient.RoomKey{Key: roomKey, Devices: []string{"bob/x"}})
	bob, _ := e2ee.GenerateSigningKey(e2ee.AlgP256)
	st.CheckIdentity("Bob", bob.Public())
	if err := st.MarkVerified("bob"); err != nil {
		t.Fatal(err)
	}
	if err := e2eeclient.NewKeyFile(path, server, "Alice", kdf, key).Save(st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key folder mode %v, %v; want 0700", di.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	pkcs8, _ := st.Identity.MarshalPKCS8()
	for _, secret := range []string{e2ee.EncodeB64U(roomKey[:]), e2ee.EncodeB64U(pkcs8), "direct:1:2", "verified"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the key file holds %q in plain", secret)
		}
	}

	kf, got, err := e2eeclient.OpenKeyFile(path, server, "alice", pass)
	if err != nil {
		t.Fatal(err)
	}
	if kf.BackupKey() != key {
		t.Fatal("the key file's key is not the backup key")
	}
	if !got.Identity.Public().Equal(st.Identity.Public()) || got.Device.ID != st.Device.ID ||
		!got.Device.DH.Public().Equal(st.Device.DH.Public()) || !got.Device.Sig.Public().Equal(st.Device.Sig.Public()) {
		t.Fatal("the keys did not come back")
	}
	if k, ok := got.RoomKey("direct:1:2", 3); !ok || k.Key != roomKey || len(k.Devices) != 1 {
		t.Fatalf("room key %v, %v", k, ok)
	}
	if tr, ok := got.TrustOf("BOB"); !ok || tr != e2eeclient.TrustVerified {
		t.Fatalf("bob's trust %v, %v", tr, ok)
	}
}

// TestKeyFileRefusals: a wrong passphrase, another account or server, a
// missing file and a damaged one each get their own clear error.
func TestKeyFileRefusals(t *testing.T) {
	const server, pass = "https://chat.example.org", "the right one"
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.json")
	kdf := e2ee.NewBackupKDF()
	key, _ := kdf.Key(pass)
	if err := e2eeclient.NewKeyFile(path, server, "alice", kdf, key).Save(mustState(t)); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.json")
	os.WriteFile(damaged, []byte("{not json"), 0o600)
	for _, c := range []struct {
		name, path, server, user, pass, want string
		is                                   error
	}{
		{"wrong passphrase", path, server, "alice", "the wrong one", "passphrase is wrong", e2ee.ErrWrongPassphrase},
		{"another account", path, server, "bob", pass, "holds the keys of alice", nil},
		{"another server", path, "https://other.example.org", "alice", pass, "holds the keys of alice on https://chat.example.org", nil},
		{"missing", filepath.Join(dir, "none.json"), server, "alice", pass, "no key file", e2eeclient.ErrNoKeyFile},
		{"damaged", damaged, server, "alice", pass, "is not a key file", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := e2eeclient.OpenKeyFile(c.path, c.server, c.user, c.pass)
			if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("err = %v; want %q", err, c.want)
			}
		})
	}
}

// TestDefaultKeyPath: one file per server and username, under the user's
// configuration folder, with no path separator from the address.
func TestDefaultKeyPath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	a, err := e2eeclient.DefaultKeyPath("https://chat.example.org", "Alice")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e2eeclient.DefaultKeyPath("http://127.0.0.1:8000", "alice")
	cfg, _ := os.UserConfigDir()
	if want := filepath.Join(cfg, "mapsim-chat", "keys", "https_chat.example.org_443", "alice.json"); a != want {
		t.Fatalf("path %q, want %q", a, want)
	}
	if want := filepath.Join(cfg, "mapsim-chat", "keys", "http_127.0.0.1_8000", "alice.json"); b != want {
		t.Fatalf("path %q, want %q", b, want)
	}
}

// TestTrustOnFirstUse: the first key is pinned, the same key stays
// pinned, a different one is a change that needs accepting and clears the
// verified mark, and the safety number is the same from both sides.
func TestTrustOnFirstUse(t *testing.T) {
	alice, bob := mustState(t), mustState(t)
	if tr, changed := alice.CheckIdentity("bob", bob.Identity.Public()); tr != e2eeclient.TrustFirstUse || !changed {
		t.Fatalf("first sight: %v %v", tr, changed)
	}
	if tr, changed := alice.CheckIdentity("Bob", bob.Identity.Public()); tr != e2eeclient.TrustPinned || changed {
		t.Fatalf("second sight: %v %v", tr, changed)
	}
	bob.CheckIdentity("alice", alice.Identity.Public())
	na, err := alice.SafetyNumber("alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	nb, _ := bob.SafetyNumber("bob", "alice")
	if na != nb || len(na) != 71 {
		t.Fatalf("safety numbers %q and %q", na, nb)
	}
	alice.MarkVerified("bob")

	other, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if tr, changed := alice.CheckIdentity("bob", other.Public()); tr != e2eeclient.TrustChanged || !changed {
		t.Fatalf("changed key: %v %v", tr, changed)
	}
	if k, _ := alice.PinnedKey("bob"); !k.Equal(bob.Identity.Public()) {
		t.Fatal("a changed key replaced the pin before it was accepted")
	}
	if err := alice.MarkVerified("bob"); err == nil {
		t.Fatal("a changed key was marked verified before it was accepted")
	}
	changedNumber, _ := alice.SafetyNumber("alice", "bob")
	if changedNumber == na {
		t.Fatal("the safety number did not change with the key")
	}
	if err := alice.Accept("bob"); err != nil {
		t.Fatal(err)
	}
	if tr, _ := alice.TrustOf("bob"); tr != e2eeclient.TrustPinned {
		t.Fatalf("after accepting: %v; the verified mark should be gone", tr)
	}
	if err := alice.Accept("bob"); err == nil {
		t.Fatal("accepting twice did not say there is nothing to accept")
	}
}
