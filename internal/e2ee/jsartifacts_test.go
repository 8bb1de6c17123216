package e2ee_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// jsArtifacts is what web/e2e/e2ee-fixture.mjs writes: keys, an envelope,
// a message, files and a backup made by the browser's implementation
// (web/static/e2ee.js) in Node's WebCrypto.
type jsArtifacts struct {
	Sets []struct {
		Algs  struct{ Sig, DH string }
		Chat  string
		Epoch uint32
		Alice jsUser
		Bob   jsUser `json:"bob"`
		// RoomKey is what the envelope must open to.
		RoomKey  string `json:"room_key"`
		Envelope e2ee.Envelope
		Message  struct {
			Sender         string          `json:"sender"`
			ClientID       string          `json:"client_id"`
			Text           string          `json:"text"`
			Plaintext      json.RawMessage `json:"plaintext"`
			FileCiphertext string          `json:"file_ciphertext"`
		}
		SafetyNumber string `json:"safety_number"`
		Backup       struct {
			Username     string               `json:"username"`
			Passphrase   string               `json:"passphrase"`
			Header       e2ee.BackupHeader    `json:"header"`
			RoomKeyItems []e2ee.RoomKeyBackup `json:"room_key_items"`
		}
	}
	Files []jsFile
}

type jsUser struct {
	Username string `json:"username"`
	Identity struct {
		Alg   string `json:"alg"`
		Pub   string `json:"pub"`
		PKCS8 string `json:"pkcs8"`
	}
	Device        e2ee.Device
	DevicePrivate struct {
		DH, Sig struct{ PKCS8 string }
	} `json:"device_private"`
}

type jsFile struct {
	Descriptor struct {
		Size        int64  `json:"size"`
		Key         string `json:"key"`
		NoncePrefix string `json:"nonce_prefix"`
		SHA256      string `json:"sha256"`
	}
	Ciphertext string `json:"ciphertext"`
}

// pattern is a fixture file's plaintext: byte i is (7i + 3) mod 256.
func pattern(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((7*i + 3) % 256)
	}
	return b
}

func b64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := e2ee.DecodeB64U(s)
	if err != nil {
		tb.Fatalf("%q: %v", s, err)
	}
	return b
}

func key32(tb testing.TB, s string) (k [32]byte) {
	tb.Helper()
	if copy(k[:], b64(tb, s)) != 32 {
		tb.Fatalf("%q is not 32 bytes", s)
	}
	return k
}

// openFile decrypts a file the browser encrypted and checks it is the
// pattern of its size.
func openFile(tb testing.TB, f jsFile) {
	tb.Helper()
	var prefix [8]byte
	copy(prefix[:], b64(tb, f.Descriptor.NoncePrefix))
	var sum [32]byte
	copy(sum[:], b64(tb, f.Descriptor.SHA256))
	r := e2ee.NewFileReader(bytes.NewReader(b64(tb, f.Ciphertext)), key32(tb, f.Descriptor.Key), prefix, sum)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pattern(f.Descriptor.Size)) {
		tb.Fatalf("a file of %d bytes opened to %d bytes, %v", f.Descriptor.Size, len(got), err)
	}
}

// openArtifacts opens everything the browser's implementation made with
// this package: certificates, the envelope, the message, files, the safety
// number and the backup.
func openArtifacts(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var a jsArtifacts
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Sets) != 2 || len(a.Files) == 0 {
		t.Fatalf("%d sets and %d files", len(a.Sets), len(a.Files))
	}
	for _, s := range a.Sets {
		t.Run(s.Algs.Sig+"+"+s.Algs.DH, func(t *testing.T) {
			alice := e2ee.PublicKey{Alg: s.Alice.Identity.Alg, Pub: b64(t, s.Alice.Identity.Pub)}
			bob := e2ee.PublicKey{Alg: s.Bob.Identity.Alg, Pub: b64(t, s.Bob.Identity.Pub)}
			for _, u := range []struct {
				name string
				id   e2ee.PublicKey
				dev  e2ee.Device
			}{{s.Alice.Username, alice, s.Alice.Device}, {s.Bob.Username, bob, s.Bob.Device}} {
				if err := e2ee.VerifyDevice(u.id, u.name, u.dev); err != nil {
					t.Fatalf("%s's device: %v", u.name, err)
				}
			}
			dh, err := e2ee.ParseAgreementKey(b64(t, s.Bob.DevicePrivate.DH.PKCS8))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := e2ee.ParseSigningKey(b64(t, s.Bob.DevicePrivate.Sig.PKCS8))
			if err != nil {
				t.Fatal(err)
			}
			bobKeys := &e2ee.DeviceKeys{ID: s.Bob.Device.ID, DH: dh, Sig: sig}
			if err := e2ee.VerifyEnvelope(s.Alice.Device, s.Alice.Username, s.Chat, s.Epoch, s.Envelope); err != nil {
				t.Fatalf("the server's check of the envelope: %v", err)
			}
			roomKey, err := e2ee.OpenEnvelope(bobKeys, s.Bob.Username, s.Chat, s.Epoch, s.Alice.Device, s.Alice.Username, s.Envelope)
			if err != nil || roomKey != key32(t, s.RoomKey) {
				t.Fatalf("the envelope opened to %x, %v", roomKey, err)
			}
			plain, err := e2ee.DecryptMessage(roomKey, s.Alice.Device, s.Chat, s.Message.Sender, s.Message.ClientID, s.Message.Text)
			if err != nil {
				t.Fatalf("the message: %v", err)
			}
			var got, want any
			json.Unmarshal(plain, &got)
			var wantText string
			if json.Unmarshal(s.Message.Plaintext, &wantText) == nil {
				json.Unmarshal([]byte(wantText), &want)
			} else {
				json.Unmarshal(s.Message.Plaintext, &want)
			}
			if got == nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("the message opened to %s, want %s", plain, s.Message.Plaintext)
			}
			var content struct {
				File struct {
					Size        int64  `json:"size"`
					Key         string `json:"key"`
					NoncePrefix string `json:"nonce_prefix"`
					SHA256      string `json:"sha256"`
				} `json:"file"`
			}
			json.Unmarshal(plain, &content)
			var f jsFile
			f.Descriptor.Size, f.Descriptor.Key, f.Descriptor.NoncePrefix, f.Descriptor.SHA256 = content.File.Size, content.File.Key, content.File.NoncePrefix, content.File.SHA256
			f.Ciphertext = s.Message.FileCiphertext
			openFile(t, f)
			if n, err := e2ee.SafetyNumber(s.Alice.Username, alice, s.Bob.Username, bob); err != nil || n != s.SafetyNumber {
				t.Fatalf("safety number %q, %v; the browser's %q", n, err, s.SafetyNumber)
			}
			bk, err := s.Backup.Header.KDF.Key(s.Backup.Passphrase)
			if err != nil {
				t.Fatal(err)
			}
			identity, err := e2ee.OpenIdentityBackup(bk, s.Backup.Username, s.Backup.Header.Identity)
			if err != nil || !identity.Public().Equal(alice) {
				t.Fatalf("the backed-up identity: %v", err)
			}
			for _, item := range s.Backup.RoomKeyItems {
				if _, err := e2ee.OpenRoomKeyBackup(bk, s.Backup.Username, item); err != nil {
					t.Fatalf("a backed-up room key: %v", err)
				}
			}
		})
	}
	for _, f := range a.Files {
		openFile(t, f)
	}
}

// TestOpensBrowserArtifacts: what the browser's implementation made (the
// committed fixture) opens with this one.
func TestOpensBrowserArtifacts(t *testing.T) {
	openArtifacts(t, filepath.Join("testdata", "js-artifacts.json"))
}

// TestOpensFreshBrowserArtifacts runs the browser's implementation in Node
// to make a fresh fixture, with new random keys, and opens it: the two
// implementations agree today, not only on the day the fixture was made.
// With CI=true a missing node fails the test.
func TestOpensFreshBrowserArtifacts(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is needed to run the browser's implementation (apt-get install nodejs)")
		}
		t.Skip("node is not installed (set CI=true to make this fail)")
	}
	out := filepath.Join(t.TempDir(), "js-artifacts.json")
	cmd := exec.Command(node, filepath.Join("..", "..", "web", "e2e", "e2ee-fixture.mjs"), out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2ee-fixture.mjs: %v\n%s", err, msg)
	}
	openArtifacts(t, out)
}
