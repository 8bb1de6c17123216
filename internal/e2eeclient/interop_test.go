package e2eeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// The artifacts file of web/e2e/e2ee-fixture.mjs, as both directions of
// the interop tests write and read it.
type artifacts struct {
	About string        `json:"about,omitempty"`
	Sets  []artifactSet `json:"sets"`
	Files []any         `json:"files"`
}

type artifactSet struct {
	Algs     map[string]string `json:"algs"`
	Chat     string            `json:"chat"`
	Epoch    uint32            `json:"epoch"`
	Alice    artifactUser      `json:"alice"`
	Bob      artifactUser      `json:"bob"`
	RoomKey  string            `json:"room_key"`
	Envelope struct {
		Sender       string `json:"sender"`
		SenderDevice string `json:"sender_device"`
		e2ee.Envelope
	} `json:"envelope"`
	Message struct {
		Sender         string `json:"sender"`
		ClientID       string `json:"client_id"`
		Text           string `json:"text"`
		Plaintext      string `json:"plaintext"`
		FileCiphertext string `json:"file_ciphertext"`
	} `json:"message"`
	SafetyNumber string `json:"safety_number"`
	Backup       struct {
		Username     string               `json:"username"`
		Passphrase   string               `json:"passphrase"`
		Header       e2ee.BackupHeader    `json:"header"`
		RoomKeyItems []e2ee.RoomKeyBackup `json:"room_key_items"`
	} `json:"backup"`
}

type artifactUser struct {
	Username string `json:"username"`
	Identity struct {
		Alg   string `json:"alg"`
		Pub   string `json:"pub"`
		PKCS8 string `json:"pkcs8,omitempty"`
	} `json:"identity"`
	Device        json.RawMessage `json:"device"`
	DevicePrivate *struct {
		DH  pkcs8Field `json:"dh"`
		Sig pkcs8Field `json:"sig"`
	} `json:"device_private,omitempty"`
}

// The envelope's sender fields sit beside the envelope's own in JSON; the
// embedded Envelope's (Un)MarshalJSON would swallow them, so the set
// writes and reads the envelope by hand.
func (s artifactSet) MarshalJSON() ([]byte, error) {
	type plain artifactSet
	raw, err := json.Marshal(plain(s))
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	env := map[string]any{}
	b, _ := json.Marshal(s.Envelope.Envelope)
	json.Unmarshal(b, &env)
	env["sender"], env["sender_device"] = s.Envelope.Sender, s.Envelope.SenderDevice
	m["envelope"], _ = json.Marshal(env)
	return json.Marshal(m)
}

func (s *artifactSet) UnmarshalJSON(data []byte) error {
	type plain artifactSet
	var p plain
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	env := m["envelope"]
	delete(m, "envelope")
	rest, _ := json.Marshal(m)
	if err := json.Unmarshal(rest, &p); err != nil {
		return err
	}
	var sender struct {
		Sender       string `json:"sender"`
		SenderDevice string `json:"sender_device"`
	}
	json.Unmarshal(env, &sender)
	p.Envelope.Sender, p.Envelope.SenderDevice = sender.Sender, sender.SenderDevice
	if err := json.Unmarshal(env, &p.Envelope.Envelope); err != nil {
		return err
	}
	*s = artifactSet(p)
	return nil
}

func mustNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is needed to run the browser's implementation (apt-get install nodejs)")
		}
		t.Skip("node is not installed (set CI=true to make this fail)")
	}
	return node
}

// TestBrowserOpensGoClient: what this client makes — an account's keys
// and device, a new epoch's envelope for another user's device, a message
// with a file, the key backup with a room key — is opened by the browser's
// implementation (web/static/e2ee.js, in Node) through
// e2ee-fixture.mjs's own checks; once for a recipient on Ed25519/X25519,
// once on P-256.
func TestBrowserOpensGoClient(t *testing.T) {
	node := mustNode(t)
	const chatName, passphrase = "group:go-client", "seven orbit lemon candle river tiger frost maple anchor velvet"
	var out artifacts
	for _, algs := range [][2]string{{e2ee.AlgEd25519, e2ee.AlgX25519}, {e2ee.AlgP256, e2ee.AlgP256}} {
		// Alice is this client: keys made as Unlock makes them.
		kdf := e2ee.NewBackupKDF()
		bk, err := kdf.Key(passphrase)
		if err != nil {
			t.Fatal(err)
		}
		identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
		device, _ := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
		alice := &Account{Username: "Alice", State: NewState(identity, device), File: NewKeyFile(filepath.Join(t.TempDir(), "k.json"), "http://x", "Alice", kdf, bk)}
		_, aliceDevice, err := alice.Me()
		if err != nil {
			t.Fatal(err)
		}
		// Bob is another user's device, whose private keys node needs.
		bobID, _ := e2ee.GenerateSigningKey(algs[0])
		bobKeys, _ := e2ee.NewDeviceKeys(algs[1], algs[0])
		bobDevice, _ := e2ee.Certify(bobID, "bob", bobKeys.Device())
		c := &Chat{acct: alice, Name: chatName, others: map[string]*member{}, noEnvelope: map[uint32]bool{}, counted: map[uint32]map[int64]bool{}, looked: map[string]bool{}}
		c.members = map[string]*member{}
		for _, u := range []UserKeys{
			{Username: "bob", Identity: ptr(bobID.Public()), Devices: []DeviceInfo{{Device: bobDevice}}},
		} {
			m, _ := c.trusted(u)
			c.members["bob"] = m
		}
		if len(c.members["bob"].devices) != 1 {
			t.Fatal("bob's device was not trusted")
		}
		roomKey := e2ee.NewRoomKey()
		envelopes, err := c.sealEnvelopes(1, roomKey)
		if err != nil || len(envelopes) != 1 {
			t.Fatalf("envelopes %v, %v", envelopes, err)
		}

		plainFile := make([]byte, 70_000)
		for i := range plainFile {
			plainFile[i] = byte((7*i + 3) % 256)
		}
		fileKey, prefix := e2ee.NewFileKey()
		var fileCT bytes.Buffer
		w := e2ee.NewFileWriter(&fileCT, fileKey, prefix)
		w.Write(plainFile)
		w.Close()
		sum := w.CiphertextSHA256()
		fileDesc, _ := json.Marshal(map[string]any{
			"id": 1, "name": "go.bin", "mime": "application/octet-stream", "size": len(plainFile),
			"key": e2ee.EncodeB64U(fileKey[:]), "nonce_prefix": e2ee.EncodeB64U(prefix[:]), "sha256": e2ee.EncodeB64U(sum[:]),
		})
		content := Content{Text: "Hello from the terminal ✓ <&>", File: fileDesc}
		text, err := c.sealMessage(1, roomKey, "cli-0123456789abcdef", content)
		if err != nil {
			t.Fatal(err)
		}
		plaintext, _ := json.Marshal(map[string]any{"v": 1, "text": content.Text, "file": json.RawMessage(fileDesc)})
		header, err := alice.backupHeader()
		if err != nil {
			t.Fatal(err)
		}
		item, err := alice.backupItem(chatName, 1, roomKey)
		if err != nil {
			t.Fatal(err)
		}
		number, err := e2ee.SafetyNumber("Alice", identity.Public(), "bob", bobID.Public())
		if err != nil {
			t.Fatal(err)
		}
		// The client's own /verify gives the same number.
		alice.State.CheckIdentity("bob", bobID.Public())
		if n, _ := alice.State.SafetyNumber("Alice", "bob"); n != number {
			t.Fatalf("/verify shows %q, want %q", n, number)
		}

		var s artifactSet
		s.Algs = map[string]string{"sig": algs[0], "dh": algs[1]}
		s.Chat, s.Epoch, s.RoomKey = chatName, 1, e2ee.EncodeB64U(roomKey[:])
		s.Alice.Username = "Alice"
		s.Alice.Identity.Alg, s.Alice.Identity.Pub = identity.Alg(), e2ee.EncodeB64U(identity.Public().Pub)
		s.Alice.Device, _ = json.Marshal(aliceDevice)
		s.Bob.Username = "bob"
		s.Bob.Identity.Alg, s.Bob.Identity.Pub = bobID.Alg(), e2ee.EncodeB64U(bobID.Public().Pub)
		s.Bob.Device, _ = json.Marshal(bobDevice)
		dhDER, _ := bobKeys.DH.MarshalPKCS8()
		sigDER, _ := bobKeys.Sig.MarshalPKCS8()
		s.Bob.DevicePrivate = &struct {
			DH  pkcs8Field `json:"dh"`
			Sig pkcs8Field `json:"sig"`
		}{}
		s.Bob.DevicePrivate.DH.PKCS8, s.Bob.DevicePrivate.Sig.PKCS8 = e2ee.EncodeB64U(dhDER), e2ee.EncodeB64U(sigDER)
		s.Envelope.Sender, s.Envelope.SenderDevice, s.Envelope.Envelope = "Alice", device.ID, envelopes[0]
		s.Message.Sender, s.Message.ClientID, s.Message.Text = "Alice", "cli-0123456789abcdef", text
		s.Message.Plaintext, s.Message.FileCiphertext = string(plaintext), e2ee.EncodeB64U(fileCT.Bytes())
		s.SafetyNumber = number
		s.Backup.Username, s.Backup.Passphrase, s.Backup.Header = "Alice", passphrase, header
		s.Backup.RoomKeyItems = []e2ee.RoomKeyBackup{item}
		out.Sets = append(out.Sets, s)
	}
	out.Files = []any{}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "go-artifacts.json")
	os.WriteFile(path, raw, 0o600)
	cmd := exec.Command(node, filepath.Join("..", "..", "web", "e2e", "e2ee-open.mjs"), path)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("e2ee.js refused what the Go client made: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), `"ed25519/x25519"`) || !strings.Contains(string(msg), `"p256/p256"`) {
		t.Fatalf("e2ee-open.mjs said %s", msg)
	}

	// And a tampered message is refused there, so the check can fail.
	m, _ := e2ee.ParseMessage(out.Sets[0].Message.Text, 1<<20)
	m.CT[3] ^= 0x20
	out.Sets[0].Message.Text = m.String()
	raw, _ = json.Marshal(out)
	os.WriteFile(path, raw, 0o600)
	if msg, err := exec.Command(node, filepath.Join("..", "..", "web", "e2e", "e2ee-open.mjs"), path).CombinedOutput(); err == nil || !strings.Contains(string(msg), "bad_signature") {
		t.Fatalf("e2ee.js opened a tampered message: %v\n%s", err, msg)
	}
}

type pkcs8Field struct {
	PKCS8 string `json:"pkcs8"`
}

func ptr[T any](v T) *T { return &v }

// TestGoClientOpensBrowser: what the browser's implementation makes, fresh
// in Node on every run, is opened by this client's own paths: the sending
// device trusted through the pinned identity key, the envelope opened, the
// message checked (and a replay of it refused), and the backup restored
// with the passphrase (a wrong one refused).
func TestGoClientOpensBrowser(t *testing.T) {
	node := mustNode(t)
	path := filepath.Join(t.TempDir(), "js-artifacts.json")
	if msg, err := exec.Command(node, filepath.Join("..", "..", "web", "e2e", "e2ee-fixture.mjs"), path).CombinedOutput(); err != nil {
		t.Fatalf("e2ee-fixture.mjs: %v\n%s", err, msg)
	}
	raw, _ := os.ReadFile(path)
	var a artifacts
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range a.Sets {
		t.Run(s.Algs["sig"]+"/"+s.Algs["dh"], func(t *testing.T) {
			b := func(x string) []byte {
				v, err := e2ee.DecodeB64U(x)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			bobID, err := e2ee.ParseSigningKey(b(s.Bob.Identity.PKCS8))
			if err != nil {
				t.Fatal(err)
			}
			dh, err := e2ee.ParseAgreementKey(b(s.Bob.DevicePrivate.DH.PKCS8))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := e2ee.ParseSigningKey(b(s.Bob.DevicePrivate.Sig.PKCS8))
			if err != nil {
				t.Fatal(err)
			}
			var bobDevice, aliceDevice e2ee.Device
			json.Unmarshal(s.Bob.Device, &bobDevice)
			json.Unmarshal(s.Alice.Device, &aliceDevice)
			bob := &Account{Username: "bob", State: NewState(bobID, &e2ee.DeviceKeys{ID: bobDevice.ID, DH: dh, Sig: sig})}
			c := &Chat{acct: bob, Name: s.Chat, others: map[string]*member{}, noEnvelope: map[uint32]bool{}, counted: map[uint32]map[int64]bool{}, looked: map[string]bool{"alice": true}}
			aliceKey := e2ee.PublicKey{Alg: s.Alice.Identity.Alg, Pub: b(s.Alice.Identity.Pub)}
			m, ev := c.trusted(UserKeys{Username: s.Alice.Username, Identity: &aliceKey, Devices: []DeviceInfo{{Device: aliceDevice}}})
			if ev == nil || ev.Trust != TrustFirstUse || len(m.devices) != 1 {
				t.Fatalf("alice's device was not trusted on first use: %+v %+v", ev, m)
			}
			c.members = map[string]*member{"alice": m}
			key, err := c.openEnvelope(ctx, s.Epoch, EnvelopeAnswer{Chat: s.Chat, Epoch: s.Epoch, Sender: s.Envelope.Sender, SenderDevice: s.Envelope.SenderDevice, Envelope: s.Envelope.Envelope})
			if err != nil || e2ee.EncodeB64U(key[:]) != s.RoomKey {
				t.Fatalf("the envelope: %v", err)
			}
			bob.State.SetRoomKey(s.Chat, s.Epoch, RoomKey{Key: key})
			msg := Message{ID: 7, Username: s.Message.Sender, ClientID: s.Message.ClientID, Text: s.Message.Text}
			got, err := c.Decrypt(ctx, msg)
			if err != nil || got.Text != "Hello from the browser ✓ <&>" || len(got.File) == 0 {
				t.Fatalf("the message: %+v, %v", got, err)
			}
			msg.ID = 8
			if _, err := c.Decrypt(ctx, msg); reason(err) != ReasonReplay {
				t.Fatalf("the browser's message replayed under another id: %v", err)
			}
			if n, err := bob.State.SafetyNumber("bob", s.Alice.Username); err != nil || n != s.SafetyNumber {
				t.Fatalf("safety number %q, %v; the browser's %q", n, err, s.SafetyNumber)
			}

			restorer := &Account{Username: s.Backup.Username}
			if _, _, err := restorer.openBackup(s.Backup.Header, s.Backup.RoomKeyItems, s.Backup.Passphrase+" "); err == nil || !strings.Contains(err.Error(), "passphrase is wrong") {
				t.Fatalf("a wrong passphrase: %v", err)
			}
			st, _, err := restorer.openBackup(s.Backup.Header, s.Backup.RoomKeyItems, s.Backup.Passphrase)
			if err != nil || !st.Identity.Public().Equal(aliceKey) {
				t.Fatalf("the backup: %v", err)
			}
			if k, ok := st.RoomKey(s.Chat, s.Epoch); !ok || e2ee.EncodeB64U(k.Key[:]) != s.RoomKey {
				t.Fatal("the backup's room key did not come back")
			}
		})
	}
}
