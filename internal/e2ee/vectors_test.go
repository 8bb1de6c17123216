package e2ee_test

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// update rewrites testdata/vectors.json from the fixed seeds:
// go test ./internal/e2ee -run TestVectors -update. Review the diff: the
// browser's implementation reads the same file, so every change there is a
// change of the protocol.
var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the fixed seeds")

const vectorsPath = "testdata/vectors.json"

// The layout of vectors.json; testdata/README.md describes it for the
// JavaScript tests.
type (
	vectors struct {
		Description   string          `json:"description"`
		Transcripts   []vTranscript   `json:"transcripts"`
		Suites        []vSuite        `json:"suites"`
		Files         []vFile         `json:"files"`
		FileNegative  []vFileNegative `json:"file_negative"`
		SafetyNumbers []vSafety       `json:"safety_numbers"`
	}
	vTranscript struct {
		Name      string   `json:"name"`
		Label     string   `json:"label"`
		FieldsHex []string `json:"fields_hex"`
		Hex       string   `json:"hex"`
	}
	vKey struct {
		Alg          string `json:"alg"`
		PrivatePKCS8 string `json:"private_pkcs8"`
		Pub          string `json:"pub"`
	}
	vDeviceKeys struct {
		DeviceID string `json:"device_id"`
		DH       vKey   `json:"dh"`
		Sig      vKey   `json:"sig"`
	}
	vUser struct {
		Username          string      `json:"username"`
		Identity          vKey        `json:"identity"`
		DeviceKeys        vDeviceKeys `json:"device_keys"`
		CertTranscriptHex string      `json:"cert_transcript_hex"`
		Device            e2ee.Device `json:"device"`
	}
	vEnvelope struct {
		Sender           string        `json:"sender"`
		Recipient        string        `json:"recipient"`
		Eph              vKey          `json:"eph"`
		IV               string        `json:"iv"`
		SharedSecretHex  string        `json:"shared_secret_hex"`
		HKDFSaltHex      string        `json:"hkdf_salt_hex"`
		InfoHex          string        `json:"info_hex"`
		KeyHex           string        `json:"key_hex"`
		SigTranscriptHex string        `json:"sig_transcript_hex"`
		Envelope         e2ee.Envelope `json:"envelope"`
	}
	vMessage struct {
		Sender    string `json:"sender"`
		ClientID  string `json:"client_id"`
		Plaintext string `json:"plaintext"`
		IV        string `json:"iv"`
		AADHex    string `json:"aad_hex"`
		CT        string `json:"ct"`
		SignedHex string `json:"signed_hex"`
		Sig       string `json:"sig"`
		Text      string `json:"text"`
	}
	vIdentityBackup struct {
		Plaintext string `json:"plaintext"`
		AADHex    string `json:"aad_hex"`
		IV        string `json:"iv"`
		CT        string `json:"ct"`
	}
	vRoomKeyBackup struct {
		RoomKey string             `json:"room_key"`
		AADHex  string             `json:"aad_hex"`
		Item    e2ee.RoomKeyBackup `json:"item"`
	}
	vBackup struct {
		User         string           `json:"user"`
		Passphrase   string           `json:"passphrase"`
		KDF          e2ee.BackupKDF   `json:"kdf"`
		BackupKeyHex string           `json:"backup_key_hex"`
		Identity     vIdentityBackup  `json:"identity"`
		RoomKeys     []vRoomKeyBackup `json:"room_keys"`
	}
	vNegative struct {
		Name              string              `json:"name"`
		Op                string              `json:"op"`
		Expect            string              `json:"expect"`
		Sender            string              `json:"sender,omitempty"`
		SenderDeviceOf    string              `json:"sender_device_of,omitempty"`
		Recipient         string              `json:"recipient,omitempty"`
		RecipientDeviceOf string              `json:"recipient_device_of,omitempty"`
		IdentityOf        string              `json:"identity_of,omitempty"`
		Username          string              `json:"username,omitempty"`
		Chat              string              `json:"chat,omitempty"`
		Epoch             uint32              `json:"epoch,omitempty"`
		ClientID          string              `json:"client_id,omitempty"`
		RoomKey           string              `json:"room_key,omitempty"`
		Text              string              `json:"text,omitempty"`
		MaxBytes          int                 `json:"max_bytes,omitempty"`
		Envelope          *e2ee.Envelope      `json:"envelope,omitempty"`
		Device            *e2ee.Device        `json:"device,omitempty"`
		Passphrase        string              `json:"passphrase,omitempty"`
		IdentityBackup    *e2ee.SealedBox     `json:"identity_backup,omitempty"`
		Item              *e2ee.RoomKeyBackup `json:"item,omitempty"`
	}
	vSuite struct {
		Name                    string            `json:"name"`
		SigAlg                  string            `json:"sig_alg"`
		DHAlg                   string            `json:"dh_alg"`
		DeterministicSignatures bool              `json:"deterministic_signatures"`
		Chat                    string            `json:"chat"`
		Epoch                   uint32            `json:"epoch"`
		RoomKey                 string            `json:"room_key"`
		Users                   map[string]*vUser `json:"users"`
		Envelopes               []vEnvelope       `json:"envelopes"`
		Message                 vMessage          `json:"message"`
		Backup                  vBackup           `json:"backup"`
		Negative                []vNegative       `json:"negative"`
	}
	vChunk struct {
		Index  uint32 `json:"index"`
		Last   bool   `json:"last"`
		IVHex  string `json:"iv_hex"`
		AADHex string `json:"aad_hex"`
		Offset int    `json:"offset"`
		Length int    `json:"length"`
		Head   string `json:"head_hex"`
		Tag    string `json:"tag_hex"`
	}
	vFile struct {
		Name                string   `json:"name"`
		Plaintext           string   `json:"plaintext"`
		Size                int      `json:"size"`
		Key                 string   `json:"key"`
		NoncePrefix         string   `json:"nonce_prefix"`
		CiphertextSize      int      `json:"ciphertext_size"`
		CiphertextSHA256Hex string   `json:"ciphertext_sha256_hex"`
		Chunks              []vChunk `json:"chunks"`
	}
	vSegment struct {
		From *int   `json:"from,omitempty"`
		To   *int   `json:"to,omitempty"`
		Hex  string `json:"hex,omitempty"`
	}
	vFileNegative struct {
		Name       string     `json:"name"`
		File       string     `json:"file"`
		Ciphertext []vSegment `json:"ciphertext"`
		SHA256Hex  string     `json:"sha256_hex"`
		Expect     string     `json:"expect"`
	}
	vSafetyUser struct {
		Username string         `json:"username"`
		Identity e2ee.PublicKey `json:"identity"`
	}
	vSafety struct {
		Name            string      `json:"name"`
		A               vSafetyUser `json:"a"`
		B               vSafetyUser `json:"b"`
		FingerprintAHex string      `json:"fingerprint_a_hex"`
		FingerprintBHex string      `json:"fingerprint_b_hex"`
		Number          string      `json:"number"`
	}
)

// Fixed inputs of the vectors.
const (
	vectorChat      = "group:c0ffee42"
	vectorOtherChat = "group:other"
	vectorEpoch     = 7
	vectorClientID  = "c-vec-1"
	vectorPlaintext = `{"v":1,"text":"Grüße, Bob! ✓ <b>&","rev":0}`
	vectorPass      = "correct horse battery staple über café"
	vectorIters     = 1000
	filePlainRecipe = "byte i is i mod 251"
)

func TestVectors(t *testing.T) {
	built := buildVectors(t)
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(built); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored := loadVectors(t)
	// What is deterministic must be what the seeds give; the ECDSA
	// signatures are checked by verifying them.
	if got, want := mustJSON(t, scrubRandom(t, stored)), mustJSON(t, scrubRandom(t, built)); got != want {
		t.Fatalf("%s is not what the seeds give (first difference near %q); if the change is meant, run go test ./internal/e2ee -run TestVectors -update and review the diff",
			vectorsPath, firstDifference(got, want))
	}
	checkVectors(t, stored)
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func firstDifference(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return a[max(0, i-60):min(len(a), i+20)]
}

// scrubRandom returns a copy of v without the ECDSA signatures and the
// texts that hold them: ECDSA draws a nonce, so these differ at every
// signing and are checked by verification instead.
func scrubRandom(tb testing.TB, v *vectors) *vectors {
	tb.Helper()
	var c vectors
	if err := json.Unmarshal([]byte(mustJSON(tb, v)), &c); err != nil {
		tb.Fatal(err)
	}
	for i := range c.Suites {
		s := &c.Suites[i]
		if s.DeterministicSignatures {
			continue
		}
		for _, u := range s.Users {
			u.Device.Cert = nil
		}
		for j := range s.Envelopes {
			s.Envelopes[j].Envelope.Sig = nil
		}
		s.Message.Sig, s.Message.Text = "", ""
		for j := range s.Negative {
			n := &s.Negative[j]
			n.Text = ""
			if n.Envelope != nil {
				n.Envelope.Sig = nil
			}
			if n.Device != nil {
				n.Device.Cert = nil
			}
		}
	}
	return &c
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// vKeyOf describes a private key for the vectors.
func vKeyOf(tb testing.TB, alg string, der []byte, err error, pub []byte) vKey {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
	return vKey{Alg: alg, PrivatePKCS8: e2ee.EncodeB64U(der), Pub: e2ee.EncodeB64U(pub)}
}

func sigKey(tb testing.TB, k *e2ee.SigningKey) vKey {
	tb.Helper()
	der, err := k.MarshalPKCS8()
	return vKeyOf(tb, k.Alg(), der, err, k.Public().Pub)
}

func dhKey(tb testing.TB, k *e2ee.AgreementKey) vKey {
	tb.Helper()
	der, err := k.MarshalPKCS8()
	return vKeyOf(tb, k.Alg(), der, err, k.Public().Pub)
}

// buildVectors makes the vectors from the fixed seeds. The package makes
// the ciphertexts and signatures; the transcripts and intermediate values
// are this file's own reading of E2EE.md (reference_test.go), so that
// checkVectors compares two readings.
func buildVectors(t *testing.T) *vectors {
	// ECDSA and nothing else here draws randomness; a fixed stream keeps
	// its signatures, and so the file, the same from one -update to the
	// next.
	cryptotest.SetGlobalRandom(t, 1)
	v := &vectors{
		Description: "Test vectors of Mapsim Chat's end-to-end encryption (E2EE.md), made by internal/e2ee's TestVectors -update. " +
			"testdata/README.md describes the layout. Every implementation must reproduce the deterministic values byte for byte " +
			"and verify the rest.",
	}
	for _, tt := range []struct {
		name   string
		label  string
		fields [][]byte
	}{
		{"label only", "mapsim-e2ee/v1/device", nil},
		{"an empty field and an epoch", "mapsim-e2ee/v1/message", [][]byte{{}, refU32(4294967295)}},
		{"UTF-8 and a lower-cased username", "mapsim-e2ee/v1/backup-room-key", [][]byte{refUser("Alice"), []byte("group:café ☕"), refU32(1)}},
	} {
		fields := make([]string, len(tt.fields))
		for i, f := range tt.fields {
			fields[i] = hexOf(f)
		}
		v.Transcripts = append(v.Transcripts, vTranscript{Name: tt.name, Label: tt.label, FieldsHex: fields, Hex: hexOf(refT(tt.label, tt.fields...))})
	}
	for _, s := range suites {
		v.Suites = append(v.Suites, buildSuite(t, s.name, s.sigAlg, s.dhAlg))
	}
	v.Files, v.FileNegative = buildFiles(t)
	v.SafetyNumbers = buildSafetyNumbers(t, v.Suites)
	return v
}

// member is a user of a suite with their keys.
type member struct {
	username string
	identity *e2ee.SigningKey
	keys     *e2ee.DeviceKeys
	device   e2ee.Device
}

func certTranscript(username string, d e2ee.Device) []byte {
	return refT("mapsim-e2ee/v1/device", refUser(username), []byte(d.ID), []byte(d.DH.Alg), d.DH.Pub, []byte(d.Sig.Alg), d.Sig.Pub)
}

func roomKeyInfo(chat string, epoch uint32, recipient string, deviceID string) []byte {
	return refT("mapsim-e2ee/v1/room-key", []byte(chat), refU32(epoch), refUser(recipient), []byte(deviceID))
}

func envelopeTranscript(chat string, epoch uint32, from member, to string, toDevice string, e e2ee.Envelope) []byte {
	return refT("mapsim-e2ee/v1/room-key-envelope", []byte(chat), refU32(epoch), refUser(from.username), []byte(from.keys.ID),
		refUser(to), []byte(toDevice), e.EphPub, e.IV, e.CT)
}

func messageAAD(chat string, epoch uint32, sender, deviceID, clientID string) []byte {
	return refT("mapsim-e2ee/v1/message", []byte(chat), refU32(epoch), refUser(sender), []byte(deviceID), []byte(clientID))
}

func messageSigned(aad, iv, ct []byte) []byte {
	return append(append(append([]byte(nil), aad...), refLP(iv)...), refLP(ct)...)
}

func mustSign(tb testing.TB, k *e2ee.SigningKey, msg []byte) []byte {
	tb.Helper()
	sig, err := k.Sign(msg)
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

func buildSuite(t *testing.T, name, sigAlg, dhAlg string) vSuite {
	label := func(x string) string { return name + "/" + x }
	s := vSuite{
		Name: name, SigAlg: sigAlg, DHAlg: dhAlg, DeterministicSignatures: sigAlg == e2ee.AlgEd25519,
		Chat: vectorChat, Epoch: vectorEpoch, Users: map[string]*vUser{},
	}
	var roomKey, nextRoomKey [32]byte
	copy(roomKey[:], seed(label("room-key")))
	copy(nextRoomKey[:], seed(label("room-key-next")))
	s.RoomKey = e2ee.EncodeB64U(roomKey[:])

	members := map[string]member{}
	for _, u := range []struct{ key, username string }{{"alice", "Alice"}, {"bob", "bob"}} {
		identity := MustSeededSigningKey(t, sigAlg, label(u.key+"/identity"))
		keys := &e2ee.DeviceKeys{
			ID: e2ee.EncodeB64U(seed(label(u.key + "/device-id"))[:16]),
			DH: MustSeededAgreementKey(t, dhAlg, label(u.key+"/device-dh")), Sig: MustSeededSigningKey(t, sigAlg, label(u.key+"/device-sig")),
		}
		device, err := e2ee.Certify(identity, u.username, keys.Device())
		if err != nil {
			t.Fatal(err)
		}
		members[u.key] = member{username: u.username, identity: identity, keys: keys, device: device}
		s.Users[u.key] = &vUser{
			Username: u.username, Identity: sigKey(t, identity),
			DeviceKeys:        vDeviceKeys{DeviceID: keys.ID, DH: dhKey(t, keys.DH), Sig: sigKey(t, keys.Sig)},
			CertTranscriptHex: hexOf(certTranscript(u.username, device)), Device: device,
		}
	}
	alice := members["alice"]

	// Envelopes from alice's device to bob's and to her own.
	envelopes := map[string]e2ee.Envelope{}
	for _, to := range []string{"bob", "alice"} {
		r := members[to]
		eph := MustSeededAgreementKey(t, dhAlg, label("envelope-eph/"+to))
		iv := seed(label("envelope-iv/" + to))[:12]
		env, err := e2ee.SealEnvelopeWith(alice.keys, alice.username, vectorChat, vectorEpoch, r.username, r.device, roomKey, eph, iv)
		if err != nil {
			t.Fatal(err)
		}
		envelopes[to] = env
		z, err := eph.SharedSecret(r.device.DH)
		if err != nil {
			t.Fatal(err)
		}
		salt := append(append([]byte(nil), env.EphPub...), r.device.DH.Pub...)
		info := roomKeyInfo(vectorChat, vectorEpoch, r.username, r.keys.ID)
		s.Envelopes = append(s.Envelopes, vEnvelope{
			Sender: "alice", Recipient: to, Eph: dhKey(t, eph), IV: e2ee.EncodeB64U(iv),
			SharedSecretHex: hexOf(z), HKDFSaltHex: hexOf(salt), InfoHex: hexOf(info), KeyHex: hexOf(refHKDF(t, z, salt, info)),
			SigTranscriptHex: hexOf(envelopeTranscript(vectorChat, vectorEpoch, alice, r.username, r.keys.ID, env)),
			Envelope:         env,
		})
	}

	// A message from alice.
	miv := seed(label("message-iv"))[:12]
	text, err := e2ee.EncryptMessageWithIV(roomKey, alice.keys, vectorChat, vectorEpoch, alice.username, vectorClientID, []byte(vectorPlaintext), miv)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e2ee.ParseMessage(text, len(text))
	if err != nil {
		t.Fatal(err)
	}
	aad := messageAAD(vectorChat, vectorEpoch, alice.username, alice.keys.ID, vectorClientID)
	s.Message = vMessage{
		Sender: "alice", ClientID: vectorClientID, Plaintext: vectorPlaintext, IV: e2ee.EncodeB64U(miv), AADHex: hexOf(aad),
		CT: e2ee.EncodeB64U(m.CT), SignedHex: hexOf(messageSigned(aad, m.IV, m.CT)), Sig: e2ee.EncodeB64U(m.Sig), Text: text,
	}

	// Alice's backup.
	salt := seed(label("backup-salt"))[:16]
	bk, err := e2ee.DeriveBackupKeyForTest(vectorPass, salt, vectorIters)
	if err != nil {
		t.Fatal(err)
	}
	biv := seed(label("backup-identity-iv"))[:12]
	box, err := e2ee.SealIdentityBackupWithIV(bk, alice.username, alice.identity, biv)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e2ee.IdentityBackupPlaintext(alice.identity)
	if err != nil {
		t.Fatal(err)
	}
	s.Backup = vBackup{
		User: "alice", Passphrase: vectorPass, KDF: e2ee.BackupKDF{Alg: e2ee.BackupKDFAlg, Iterations: vectorIters, Salt: salt},
		BackupKeyHex: hexOf(bk[:]),
		Identity: vIdentityBackup{
			Plaintext: string(plain), AADHex: hexOf(refT("mapsim-e2ee/v1/backup-identity", refUser(alice.username))),
			IV: e2ee.EncodeB64U(box.IV), CT: e2ee.EncodeB64U(box.CT),
		},
	}
	var items []e2ee.RoomKeyBackup
	for i, rk := range []struct {
		chat  string
		epoch uint32
		key   [32]byte
	}{{vectorChat, vectorEpoch, roomKey}, {"direct:3:7", 1, nextRoomKey}} {
		item, err := e2ee.SealRoomKeyBackupWithIV(bk, alice.username, rk.chat, rk.epoch, rk.key, seed(label(fmt.Sprintf("backup-room-key-iv/%d", i)))[:12])
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item)
		s.Backup.RoomKeys = append(s.Backup.RoomKeys, vRoomKeyBackup{
			RoomKey: e2ee.EncodeB64U(rk.key[:]),
			AADHex:  hexOf(refT("mapsim-e2ee/v1/backup-room-key", refUser(alice.username), []byte(rk.chat), refU32(rk.epoch))),
			Item:    item,
		})
	}

	s.Negative = buildNegatives(t, label, members, envelopes, m, roomKey, nextRoomKey, box, items)
	return s
}

// buildNegatives makes the inputs every implementation must refuse, each
// with the reason. Those marked "signed again" carry a valid signature
// over the altered bytes, as a sender that made them so would, so that the
// check after the signature must refuse them.
func buildNegatives(t *testing.T, label func(string) string, members map[string]member, envelopes map[string]e2ee.Envelope,
	m e2ee.SealedMessage, roomKey, nextRoomKey [32]byte, box e2ee.SealedBox, items []e2ee.RoomKeyBackup) []vNegative {
	alice, bob := members["alice"], members["bob"]
	var out []vNegative
	envCase := func(name, op, expect, chat string, epoch uint32, e e2ee.Envelope) {
		n := vNegative{Name: name, Op: op, Expect: expect, Sender: alice.username, SenderDeviceOf: "alice", Chat: chat, Epoch: epoch, Envelope: &e}
		if op == "open_envelope" {
			n.Recipient, n.RecipientDeviceOf = bob.username, "bob"
		}
		out = append(out, n)
	}
	resign := func(e e2ee.Envelope) e2ee.Envelope {
		e.Sig = mustSign(t, alice.keys.Sig, envelopeTranscript(vectorChat, vectorEpoch, alice, e.Recipient, e.RecipientDevice, e))
		return e
	}
	env := envelopes["bob"]
	with := func(f func(e *e2ee.Envelope)) e2ee.Envelope {
		e := env
		f(&e)
		return e
	}
	flippedCT := with(func(e *e2ee.Envelope) { e.CT = flip(e.CT, 0) })
	envCase("envelope ct with a flipped bit", "verify_envelope", "bad_signature", vectorChat, vectorEpoch, flippedCT)
	envCase("envelope ct with a flipped bit", "open_envelope", "bad_signature", vectorChat, vectorEpoch, flippedCT)
	envCase("envelope ct with a flipped bit, signed again", "open_envelope", "altered", vectorChat, vectorEpoch, resign(flippedCT))
	envCase("envelope checked for another chat", "verify_envelope", "bad_signature", vectorOtherChat, vectorEpoch, env)
	envCase("envelope opened as another chat's", "open_envelope", "bad_signature", vectorOtherChat, vectorEpoch, env)
	elsewhere, err := e2ee.SealEnvelopeWith(alice.keys, alice.username, vectorOtherChat, vectorEpoch, bob.username, bob.device, roomKey,
		MustSeededAgreementKey(t, bob.device.DH.Alg, label("envelope-eph/bob")), env.IV)
	if err != nil {
		t.Fatal(err)
	}
	envCase("envelope sealed for another chat (wrong AAD), signed for this one", "open_envelope", "altered", vectorChat, vectorEpoch, resign(elsewhere))
	envCase("envelope checked under another epoch", "verify_envelope", "bad_signature", vectorChat, vectorEpoch+1, env)
	envCase("envelope signature with a flipped bit", "verify_envelope", "bad_signature", vectorChat, vectorEpoch, with(func(e *e2ee.Envelope) { e.Sig = flip(e.Sig, 1) }))
	envCase("another recipient's envelope (alice's own)", "open_envelope", "wrong_device", vectorChat, vectorEpoch, envelopes["alice"])
	readdressed := envelopes["alice"]
	readdressed.Recipient, readdressed.RecipientDevice = bob.username, bob.keys.ID
	envCase("alice's own envelope readdressed to bob", "verify_envelope", "bad_signature", vectorChat, vectorEpoch, readdressed)
	envCase("alice's own envelope readdressed to bob, signed again", "open_envelope", "altered", vectorChat, vectorEpoch, resign(readdressed))
	envCase("envelope with an 11-byte iv", "verify_envelope", "malformed", vectorChat, vectorEpoch, with(func(e *e2ee.Envelope) { e.IV = e.IV[:11] }))
	if alice.device.Sig.Alg == e2ee.AlgEd25519 {
		envCase("envelope signature with S + L (non-canonical)", "verify_envelope", "bad_signature", vectorChat, vectorEpoch,
			with(func(e *e2ee.Envelope) { e.Sig = ed25519AddL(e.Sig) }))
	} else {
		n := elliptic.P256().Params().N
		envCase("envelope signature with s = n", "verify_envelope", "bad_signature", vectorChat, vectorEpoch,
			with(func(e *e2ee.Envelope) {
				e.Sig = append(append([]byte(nil), e.Sig[:32]...), n.FillBytes(make([]byte, 32))...)
			}))
		envCase("envelope signature with r = 0", "verify_envelope", "bad_signature", vectorChat, vectorEpoch,
			with(func(e *e2ee.Envelope) { e.Sig = append(make([]byte, 32), e.Sig[32:]...) }))
	}

	// Messages.
	msgCase := func(name, expect, chat, sender, deviceOf, clientID string, key [32]byte, text string) {
		out = append(out, vNegative{Name: name, Op: "decrypt_message", Expect: expect, Sender: sender, SenderDeviceOf: deviceOf,
			Chat: chat, ClientID: clientID, RoomKey: e2ee.EncodeB64U(key[:]), Text: text})
	}
	alter := func(f func(c *e2ee.SealedMessage)) e2ee.SealedMessage {
		c := m
		c.IV, c.CT, c.Sig = append([]byte(nil), m.IV...), append([]byte(nil), m.CT...), append([]byte(nil), m.Sig...)
		f(&c)
		return c
	}
	resignMsg := func(c e2ee.SealedMessage) string {
		c.Sig = mustSign(t, alice.keys.Sig, messageSigned(messageAAD(vectorChat, c.Epoch, alice.username, c.DeviceID, vectorClientID), c.IV, c.CT))
		return c.String()
	}
	text := m.String()
	msgCase("message decrypted as another chat's", "bad_signature", vectorOtherChat, alice.username, "alice", vectorClientID, roomKey, text)
	elsewhereMsg := alter(func(c *e2ee.SealedMessage) {
		c.CT = refGCM(t, roomKey[:]).Seal(nil, c.IV, []byte(vectorPlaintext), messageAAD(vectorOtherChat, vectorEpoch, alice.username, alice.keys.ID, vectorClientID))
	})
	msgCase("message encrypted with another chat's AAD, signed for this one", "altered", vectorChat, alice.username, "alice", vectorClientID, roomKey, resignMsg(elsewhereMsg))
	msgCase("message moved to another epoch", "bad_signature", vectorChat, alice.username, "alice", vectorClientID, nextRoomKey,
		alter(func(c *e2ee.SealedMessage) { c.Epoch = vectorEpoch + 1 }).String())
	msgCase("message moved to another epoch, signed again", "altered", vectorChat, alice.username, "alice", vectorClientID, nextRoomKey,
		resignMsg(alter(func(c *e2ee.SealedMessage) { c.Epoch = vectorEpoch + 1 })))
	msgCase("message replayed as another client_id", "bad_signature", vectorChat, alice.username, "alice", "c-vec-2", roomKey, text)
	msgCase("message from another username", "bad_signature", vectorChat, "mallory", "alice", vectorClientID, roomKey, text)
	msgCase("message checked against bob's device", "wrong_device", vectorChat, bob.username, "bob", vectorClientID, roomKey, text)
	msgCase("message signature with a flipped bit", "bad_signature", vectorChat, alice.username, "alice", vectorClientID, roomKey,
		alter(func(c *e2ee.SealedMessage) { c.Sig[0] ^= 1 }).String())
	other, err := e2ee.EncryptMessageWithIV(roomKey, alice.keys, vectorChat, vectorEpoch, alice.username, "c-vec-2", []byte(`{"v":1,"text":"another"}`), seed(label("message-2-iv"))[:12])
	if err != nil {
		t.Fatal(err)
	}
	om, _ := e2ee.ParseMessage(other, len(other))
	msgCase("message with another message's signature", "bad_signature", vectorChat, alice.username, "alice", vectorClientID, roomKey,
		alter(func(c *e2ee.SealedMessage) { c.Sig = om.Sig }).String())
	msgCase("message ct with a flipped bit", "bad_signature", vectorChat, alice.username, "alice", vectorClientID, roomKey,
		alter(func(c *e2ee.SealedMessage) { c.CT[len(c.CT)-1] ^= 1 }).String())
	msgCase("message ct with a flipped bit, signed again", "altered", vectorChat, alice.username, "alice", vectorClientID, roomKey,
		resignMsg(alter(func(c *e2ee.SealedMessage) { c.CT[len(c.CT)-1] ^= 1 })))
	msgCase("message under the wrong room key", "altered", vectorChat, alice.username, "alice", vectorClientID, nextRoomKey, text)

	// Shapes the server refuses.
	parts := strings.Split(text, ".")
	rejoin := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, ".")
	}
	for _, c := range []struct{ name, text string }{
		{"epoch with a leading zero", rejoin(1, "07")},
		{"epoch 0", rejoin(1, "0")},
		{"epoch 2^32", rejoin(1, "4294967296")},
		{"padding on the ct", rejoin(4, parts[4]+"==")},
		{"a line break in the ct", rejoin(4, parts[4][:8]+"\n"+parts[4][8:])},
		{"a 63-byte signature", rejoin(5, e2ee.EncodeB64U(m.Sig[:63]))},
		{"a 13-byte iv", rejoin(3, e2ee.EncodeB64U(append(append([]byte(nil), m.IV...), 0)))},
		{"a non-canonical last character", rejoin(2, parts[2][:21]+string(rune(parts[2][21]+1)))},
		{"prefix mse2", "mse2" + text[4:]},
		{"a sixth field", text + ".AA"},
	} {
		out = append(out, vNegative{Name: c.name, Op: "parse_message", Expect: "malformed", Text: c.text, MaxBytes: 100000})
	}
	out = append(out, vNegative{Name: "a text one byte over the bound", Op: "parse_message", Expect: "too_large", Text: text, MaxBytes: len(text) - 1})

	// Devices.
	devCase := func(name, identityOf, username string, d e2ee.Device) {
		out = append(out, vNegative{Name: name, Op: "verify_device", Expect: "bad_certificate", IdentityOf: identityOf, Username: username, Device: &d})
	}
	devCase("alice's device claimed by mallory", "alice", "mallory", alice.device)
	devCase("alice's device checked against bob's identity key", "bob", alice.username, alice.device)
	d := alice.device
	d.Cert = flip(d.Cert, 62)
	devCase("certificate with a flipped bit", "alice", alice.username, d)
	d = alice.device
	d.DH = bob.device.DH
	devCase("alice's certificate over bob's agreement key", "alice", alice.username, d)

	// Backup.
	wrong := items[0]
	wrong.Epoch++
	out = append(out,
		vNegative{Name: "identity backup with a wrong passphrase", Op: "open_identity_backup", Expect: "wrong_passphrase",
			Username: alice.username, Passphrase: "correct horse battery staple uber cafe", IdentityBackup: &box},
		vNegative{Name: "alice's identity backup opened as bob's", Op: "open_identity_backup", Expect: "wrong_passphrase",
			Username: bob.username, Passphrase: vectorPass, IdentityBackup: &box},
		vNegative{Name: "room key backup moved to another epoch", Op: "open_room_key_backup", Expect: "altered",
			Username: alice.username, Passphrase: vectorPass, Item: &wrong},
	)
	return out
}

// fileCases are the files of the vectors: the empty file (one empty
// chunk), a file of exactly one chunk (no empty chunk after it) and one of
// two and a half chunks.
var fileCases = []struct {
	name string
	size int
}{
	{"empty", 0},
	{"one chunk", chunk},
	{"two and a half chunks", chunk * 5 / 2},
}

func fileKeyOf(name string) ([32]byte, [8]byte) {
	var key [32]byte
	var prefix [8]byte
	copy(key[:], seed("file/"+name+"/key"))
	copy(prefix[:], seed("file/"+name+"/nonce-prefix"))
	return key, prefix
}

func buildFiles(t *testing.T) ([]vFile, []vFileNegative) {
	var files []vFile
	cts := map[string][]byte{}
	for _, fc := range fileCases {
		key, prefix := fileKeyOf(fc.name)
		ct, sum := MustEncryptFile(t, filePlain(fc.size), key, prefix, 0)
		cts[fc.name] = ct
		f := vFile{
			Name: fc.name, Plaintext: filePlainRecipe, Size: fc.size, Key: e2ee.EncodeB64U(key[:]), NoncePrefix: e2ee.EncodeB64U(prefix[:]),
			CiphertextSize: len(ct), CiphertextSHA256Hex: hexOf(sum[:]),
		}
		for i, c := range chunks(ct) {
			last := i == len(chunks(ct))-1
			f.Chunks = append(f.Chunks, vChunk{
				Index: uint32(i), Last: last, IVHex: hexOf(append(append([]byte(nil), prefix[:]...), refU32(uint32(i))...)),
				AADHex: hexOf(refChunkAAD(uint32(i), last)), Offset: i * sealedChunk, Length: len(c),
				Head: hexOf(c[:min(16, len(c))]), Tag: hexOf(c[len(c)-16:]),
			})
		}
		files = append(files, f)
	}
	seg := func(from, to int) vSegment { return vSegment{From: &from, To: &to} }
	ct := cts["two and a half chunks"]
	n := len(ct)
	c1, c2 := sealedChunk, 2*sealedChunk
	flipped := flip(ct, c1+100)[c1+100 : c1+101]
	var negatives []vFileNegative
	for _, c := range []struct {
		name, file string
		segs       []vSegment
		expect     string
	}{
		{"truncated after chunk 1", "two and a half chunks", []vSegment{seg(0, c2)}, "truncated"},
		{"truncated after chunk 0", "two and a half chunks", []vSegment{seg(0, c1)}, "truncated"},
		{"truncated inside the last chunk", "two and a half chunks", []vSegment{seg(0, n-100)}, "altered"},
		{"empty", "two and a half chunks", []vSegment{}, "truncated"},
		{"chunks 0 and 1 swapped", "two and a half chunks", []vSegment{seg(c1, c2), seg(0, c1), seg(c2, n)}, "altered"},
		{"chunk 1 dropped", "two and a half chunks", []vSegment{seg(0, c1), seg(c2, n)}, "altered"},
		{"a byte appended", "two and a half chunks", []vSegment{seg(0, n), {Hex: "00"}}, "altered"},
		{"a flipped bit in chunk 1", "two and a half chunks", []vSegment{seg(0, c1+100), {Hex: hexOf(flipped)}, seg(c1+101, n)}, "altered"},
		{"a byte appended after a full last chunk", "one chunk", []vSegment{seg(0, sealedChunk), {Hex: "00"}}, "altered"},
	} {
		altered := assemble(t, cts[c.file], c.segs)
		sum := sha256.Sum256(altered)
		negatives = append(negatives, vFileNegative{Name: c.name, File: c.file, Ciphertext: c.segs, SHA256Hex: hexOf(sum[:]), Expect: c.expect})
	}
	return files, negatives
}

// assemble builds an altered ciphertext from pieces of ct and literal
// bytes.
func assemble(tb testing.TB, ct []byte, segs []vSegment) []byte {
	tb.Helper()
	var out []byte
	for _, s := range segs {
		if s.From != nil {
			out = append(out, ct[*s.From:*s.To]...)
			continue
		}
		out = append(out, mustHex(tb, s.Hex)...)
	}
	return out
}

func buildSafetyNumbers(t *testing.T, suites []vSuite) []vSafety {
	pub := func(s vSuite, user string) e2ee.PublicKey {
		k := s.Users[user].Identity
		return e2ee.PublicKey{Alg: k.Alg, Pub: mustB64(t, k.Pub)}
	}
	ed, p := suites[0], suites[1]
	var out []vSafety
	for _, c := range []struct {
		name string
		a, b vSafetyUser
	}{
		{"ed25519: Alice and bob", vSafetyUser{"Alice", pub(ed, "alice")}, vSafetyUser{"bob", pub(ed, "bob")}},
		{"ed25519: bob and Alice, the same number", vSafetyUser{"bob", pub(ed, "bob")}, vSafetyUser{"Alice", pub(ed, "alice")}},
		{"p256: Alice and bob", vSafetyUser{"Alice", pub(p, "alice")}, vSafetyUser{"bob", pub(p, "bob")}},
		{"mixed: Alice (ed25519) and bob (p256)", vSafetyUser{"Alice", pub(ed, "alice")}, vSafetyUser{"bob", pub(p, "bob")}},
		{"ordered by the lower-cased name: Zed after alice", vSafetyUser{"Zed", pub(ed, "bob")}, vSafetyUser{"alice", pub(ed, "alice")}},
	} {
		fa, err := e2ee.Fingerprint(c.a.Username, c.a.Identity)
		if err != nil {
			t.Fatal(err)
		}
		fb, _ := e2ee.Fingerprint(c.b.Username, c.b.Identity)
		number, err := e2ee.SafetyNumber(c.a.Username, c.a.Identity, c.b.Username, c.b.Identity)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vSafety{Name: c.name, A: c.a, B: c.b, FingerprintAHex: hexOf(fa[:]), FingerprintBHex: hexOf(fb[:]), Number: number})
	}
	return out
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := e2ee.DecodeB64U(s)
	if err != nil {
		tb.Fatalf("%q: %v", s, err)
	}
	return b
}

func mustKey32(tb testing.TB, s string) [32]byte {
	tb.Helper()
	var k [32]byte
	if b := mustB64(tb, s); len(b) != 32 {
		tb.Fatalf("key of %d bytes", len(b))
	} else {
		copy(k[:], b)
	}
	return k
}

// wantHex fails unless got is the hex want.
func wantHex(tb testing.TB, what string, got []byte, want string) {
	tb.Helper()
	if hexOf(got) != want {
		tb.Fatalf("%s:\n got  %x\n want %s", what, got, want)
	}
}

func wantBytes(tb testing.TB, what string, got, want []byte) {
	tb.Helper()
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s:\n got  %x\n want %x", what, got, want)
	}
}

// checkVectors checks every value of v as an implementation reading the
// file would: it imports the keys, recomputes the deterministic values
// with this file's reading of E2EE.md and with the package, verifies the
// signatures, opens what is sealed and refuses every negative vector.
func checkVectors(t *testing.T, v *vectors) {
	for _, tr := range v.Transcripts {
		fields := make([][]byte, len(tr.FieldsHex))
		for i, f := range tr.FieldsHex {
			fields[i] = mustHex(t, f)
		}
		wantHex(t, tr.Name, e2ee.Transcript(tr.Label, fields...), tr.Hex)
		wantHex(t, tr.Name+" (reference)", refT(tr.Label, fields...), tr.Hex)
	}
	if len(v.Suites) != len(suites) {
		t.Fatalf("%d suites", len(v.Suites))
	}
	for _, s := range v.Suites {
		t.Run(s.Name, func(t *testing.T) { checkSuite(t, s) })
	}
	t.Run("files", func(t *testing.T) { checkFiles(t, v) })
	t.Run("safety numbers", func(t *testing.T) {
		for _, c := range v.SafetyNumbers {
			fa, err := e2ee.Fingerprint(c.A.Username, c.A.Identity)
			if err != nil {
				t.Fatal(err)
			}
			fb, _ := e2ee.Fingerprint(c.B.Username, c.B.Identity)
			wantHex(t, c.Name+" fingerprint a", fa[:], c.FingerprintAHex)
			wantHex(t, c.Name+" fingerprint b", fb[:], c.FingerprintBHex)
			for _, got := range []string{
				refSafetyNumber(c.A.Username, c.A.Identity, c.B.Username, c.B.Identity),
				mustSafety(t, c.A, c.B), mustSafety(t, c.B, c.A),
			} {
				if got != c.Number {
					t.Fatalf("%s: %s, want %s", c.Name, got, c.Number)
				}
			}
		}
	})
}

func mustSafety(tb testing.TB, a, b vSafetyUser) string {
	tb.Helper()
	n, err := e2ee.SafetyNumber(a.Username, a.Identity, b.Username, b.Identity)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func mustSigKey(tb testing.TB, k vKey) *e2ee.SigningKey {
	tb.Helper()
	key, err := e2ee.ParseSigningKey(mustB64(tb, k.PrivatePKCS8))
	if err != nil {
		tb.Fatal(err)
	}
	if !key.Public().Equal(e2ee.PublicKey{Alg: k.Alg, Pub: mustB64(tb, k.Pub)}) {
		tb.Fatalf("the %s private key is not the public key given", k.Alg)
	}
	return key
}

func mustDHKey(tb testing.TB, k vKey) *e2ee.AgreementKey {
	tb.Helper()
	key, err := e2ee.ParseAgreementKey(mustB64(tb, k.PrivatePKCS8))
	if err != nil {
		tb.Fatal(err)
	}
	if !key.Public().Equal(e2ee.PublicKey{Alg: k.Alg, Pub: mustB64(tb, k.Pub)}) {
		tb.Fatalf("the %s private key is not the public key given", k.Alg)
	}
	return key
}

func checkSuite(t *testing.T, s vSuite) {
	members := map[string]member{}
	for key, u := range s.Users {
		identity := mustSigKey(t, u.Identity)
		keys := &e2ee.DeviceKeys{ID: u.DeviceKeys.DeviceID, DH: mustDHKey(t, u.DeviceKeys.DH), Sig: mustSigKey(t, u.DeviceKeys.Sig)}
		if identity.Alg() != s.SigAlg || keys.Sig.Alg() != s.SigAlg || keys.DH.Alg() != s.DHAlg {
			t.Fatalf("%s: keys of other algorithms than the suite's", key)
		}
		d := u.Device
		if d.ID != keys.ID || !d.DH.Equal(keys.DH.Public()) || !d.Sig.Equal(keys.Sig.Public()) {
			t.Fatalf("%s: the published device is not the device's keys", key)
		}
		ct := certTranscript(u.Username, d)
		wantHex(t, key+" certificate transcript", ct, u.CertTranscriptHex)
		if err := identity.Public().Verify(ct, d.Cert); err != nil {
			t.Fatalf("%s: the certificate does not verify over the transcript: %v", key, err)
		}
		if err := e2ee.VerifyDevice(identity.Public(), u.Username, d); err != nil {
			t.Fatal(err)
		}
		if s.DeterministicSignatures {
			wantBytes(t, key+" certificate", mustSign(t, identity, ct), d.Cert)
		}
		members[key] = member{username: u.Username, identity: identity, keys: keys, device: d}
	}
	roomKey := mustKey32(t, s.RoomKey)

	for _, ev := range s.Envelopes {
		from, to := members[ev.Sender], members[ev.Recipient]
		env := ev.Envelope
		eph := mustDHKey(t, ev.Eph)
		iv := mustB64(t, ev.IV)
		wantBytes(t, "eph_pub", env.EphPub, eph.Public().Pub)
		wantBytes(t, "iv", env.IV, iv)
		if env.Recipient != to.username || env.RecipientDevice != to.keys.ID {
			t.Fatalf("envelope addressed to %s/%s", env.Recipient, env.RecipientDevice)
		}
		z, err := eph.SharedSecret(to.device.DH)
		if err != nil {
			t.Fatal(err)
		}
		z2, err := to.keys.DH.SharedSecret(e2ee.PublicKey{Alg: to.keys.DH.Alg(), Pub: env.EphPub})
		if err != nil {
			t.Fatal(err)
		}
		wantHex(t, "shared secret", z, ev.SharedSecretHex)
		wantHex(t, "shared secret (recipient's side)", z2, ev.SharedSecretHex)
		salt := append(append([]byte(nil), env.EphPub...), to.device.DH.Pub...)
		wantHex(t, "hkdf salt", salt, ev.HKDFSaltHex)
		info := roomKeyInfo(s.Chat, s.Epoch, to.username, to.keys.ID)
		wantHex(t, "info", info, ev.InfoHex)
		k := refHKDF(t, z, salt, info)
		wantHex(t, "envelope key", k, ev.KeyHex)
		wantBytes(t, "envelope ct", env.CT, refGCM(t, k).Seal(nil, iv, roomKey[:], info))
		st := envelopeTranscript(s.Chat, s.Epoch, from, to.username, to.keys.ID, env)
		wantHex(t, "envelope signature transcript", st, ev.SigTranscriptHex)
		if err := from.device.Sig.Verify(st, env.Sig); err != nil {
			t.Fatalf("envelope signature: %v", err)
		}
		if err := e2ee.VerifyEnvelope(from.device, from.username, s.Chat, s.Epoch, env); err != nil {
			t.Fatal(err)
		}
		got, err := e2ee.OpenEnvelope(to.keys, to.username, s.Chat, s.Epoch, from.device, from.username, env)
		if err != nil || got != roomKey {
			t.Fatalf("opened %x, %v", got, err)
		}
		again, err := e2ee.SealEnvelopeWith(from.keys, from.username, s.Chat, s.Epoch, to.username, to.device, roomKey, eph, iv)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, "envelope ct sealed again", again.CT, env.CT)
		if s.DeterministicSignatures {
			wantBytes(t, "envelope signature", again.Sig, env.Sig)
		}
	}

	mv := s.Message
	from := members[mv.Sender]
	iv := mustB64(t, mv.IV)
	aad := messageAAD(s.Chat, s.Epoch, from.username, from.keys.ID, mv.ClientID)
	wantHex(t, "message aad", aad, mv.AADHex)
	ct := refGCM(t, roomKey[:]).Seal(nil, iv, []byte(mv.Plaintext), aad)
	wantBytes(t, "message ct", mustB64(t, mv.CT), ct)
	signed := messageSigned(aad, iv, ct)
	wantHex(t, "message signed bytes", signed, mv.SignedHex)
	sig := mustB64(t, mv.Sig)
	if err := from.device.Sig.Verify(signed, sig); err != nil {
		t.Fatalf("message signature: %v", err)
	}
	if want := fmt.Sprintf("mse1.%d.%s.%s.%s.%s", s.Epoch, from.keys.ID, mv.IV, mv.CT, mv.Sig); mv.Text != want {
		t.Fatalf("message text %s, want %s", mv.Text, want)
	}
	plain, err := e2ee.DecryptMessage(roomKey, from.device, s.Chat, from.username, mv.ClientID, mv.Text)
	if err != nil || string(plain) != mv.Plaintext {
		t.Fatalf("decrypted %s, %v", plain, err)
	}
	again, err := e2ee.EncryptMessageWithIV(roomKey, from.keys, s.Chat, s.Epoch, from.username, mv.ClientID, []byte(mv.Plaintext), iv)
	if err != nil {
		t.Fatal(err)
	}
	if s.DeterministicSignatures && again != mv.Text {
		t.Fatalf("encrypted again: %s", again)
	}

	b := s.Backup
	owner := members[b.User]
	bk, err := e2ee.DeriveBackupKeyForTest(b.Passphrase, b.KDF.Salt, b.KDF.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	wantHex(t, "backup key", bk[:], b.BackupKeyHex)
	ownerDER, _ := owner.identity.MarshalPKCS8()
	wantPlain := fmt.Sprintf(`{"alg":"%s","private":"%s","pub":"%s"}`, owner.identity.Alg(), e2ee.EncodeB64U(ownerDER), e2ee.EncodeB64U(owner.identity.Public().Pub))
	if b.Identity.Plaintext != wantPlain {
		t.Fatalf("identity backup plaintext %s, want %s", b.Identity.Plaintext, wantPlain)
	}
	baad := refT("mapsim-e2ee/v1/backup-identity", refUser(owner.username))
	wantHex(t, "identity backup aad", baad, b.Identity.AADHex)
	biv := mustB64(t, b.Identity.IV)
	wantBytes(t, "identity backup ct", mustB64(t, b.Identity.CT), refGCM(t, bk[:]).Seal(nil, biv, []byte(wantPlain), baad))
	restored, err := e2ee.OpenIdentityBackup(bk, owner.username, e2ee.SealedBox{IV: biv, CT: mustB64(t, b.Identity.CT)})
	if err != nil || !restored.Public().Equal(owner.identity.Public()) {
		t.Fatalf("restored %v, %v", restored, err)
	}
	for _, rk := range b.RoomKeys {
		key := mustKey32(t, rk.RoomKey)
		raad := refT("mapsim-e2ee/v1/backup-room-key", refUser(owner.username), []byte(rk.Item.Chat), refU32(rk.Item.Epoch))
		wantHex(t, "room key backup aad", raad, rk.AADHex)
		wantBytes(t, "room key backup ct", rk.Item.CT, refGCM(t, bk[:]).Seal(nil, rk.Item.IV, key[:], raad))
		got, err := e2ee.OpenRoomKeyBackup(bk, owner.username, rk.Item)
		if err != nil || got != key {
			t.Fatalf("opened %x, %v", got, err)
		}
	}

	for _, n := range s.Negative {
		t.Run(n.Name+" ("+n.Op+")", func(t *testing.T) {
			if _, ok := errorClasses[n.Expect]; !ok {
				t.Fatalf("expect %q is no error class", n.Expect)
			}
			wantClass(t, runNegative(t, s, members, n), n.Expect)
		})
	}
}

// runNegative performs a negative vector's operation.
func runNegative(t *testing.T, s vSuite, members map[string]member, n vNegative) error {
	switch n.Op {
	case "verify_device":
		return e2ee.VerifyDevice(members[n.IdentityOf].identity.Public(), n.Username, *n.Device)
	case "verify_envelope":
		return e2ee.VerifyEnvelope(members[n.SenderDeviceOf].device, n.Sender, n.Chat, n.Epoch, *n.Envelope)
	case "open_envelope":
		_, err := e2ee.OpenEnvelope(members[n.RecipientDeviceOf].keys, n.Recipient, n.Chat, n.Epoch, members[n.SenderDeviceOf].device, n.Sender, *n.Envelope)
		return err
	case "decrypt_message":
		_, err := e2ee.DecryptMessage(mustKey32(t, n.RoomKey), members[n.SenderDeviceOf].device, n.Chat, n.Sender, n.ClientID, n.Text)
		return err
	case "parse_message":
		_, err := e2ee.ParseMessage(n.Text, n.MaxBytes)
		return err
	case "open_identity_backup", "open_room_key_backup":
		bk, err := e2ee.DeriveBackupKeyForTest(n.Passphrase, s.Backup.KDF.Salt, s.Backup.KDF.Iterations)
		if err != nil {
			t.Fatal(err)
		}
		if n.Op == "open_identity_backup" {
			_, err = e2ee.OpenIdentityBackup(bk, n.Username, *n.IdentityBackup)
		} else {
			_, err = e2ee.OpenRoomKeyBackup(bk, n.Username, *n.Item)
		}
		return err
	}
	t.Fatalf("unknown op %q", n.Op)
	return nil
}

func checkFiles(t *testing.T, v *vectors) {
	cts := map[string][]byte{}
	for _, f := range v.Files {
		if f.Plaintext != filePlainRecipe {
			t.Fatalf("plaintext %q", f.Plaintext)
		}
		key, prefix := mustKey32(t, f.Key), [8]byte(mustB64(t, f.NoncePrefix))
		plain := filePlain(f.Size)
		// Encrypt chunk by chunk as E2EE.md says, then compare with the
		// package's writer.
		var ct []byte
		gcm := refGCM(t, key[:])
		for i, c := range f.Chunks {
			wantHex(t, "chunk iv", append(prefix[:], refU32(uint32(i))...), c.IVHex)
			wantHex(t, "chunk aad", refChunkAAD(uint32(i), c.Last), c.AADHex)
			if c.Index != uint32(i) || c.Last != (i == len(f.Chunks)-1) || c.Offset != len(ct) {
				t.Fatalf("%s: chunk %d is %+v", f.Name, i, c)
			}
			part := plain[min(len(plain), i*chunk):min(len(plain), (i+1)*chunk)]
			sealed := gcm.Seal(nil, append(prefix[:], refU32(uint32(i))...), part, refChunkAAD(uint32(i), c.Last))
			if len(sealed) != c.Length {
				t.Fatalf("%s: chunk %d of %d bytes, want %d", f.Name, i, len(sealed), c.Length)
			}
			wantHex(t, "chunk head", sealed[:min(16, len(sealed))], c.Head)
			wantHex(t, "chunk tag", sealed[len(sealed)-16:], c.Tag)
			ct = append(ct, sealed...)
		}
		sum := sha256.Sum256(ct)
		wantHex(t, f.Name+" ciphertext SHA-256", sum[:], f.CiphertextSHA256Hex)
		if len(ct) != f.CiphertextSize || e2ee.EncryptedFileSize(int64(f.Size)) != int64(len(ct)) {
			t.Fatalf("%s: ciphertext of %d bytes, vectors say %d", f.Name, len(ct), f.CiphertextSize)
		}
		mine, mySum := MustEncryptFile(t, plain, key, prefix, 5000)
		if !bytes.Equal(mine, ct) || mySum != sum {
			t.Fatalf("%s: the writer's ciphertext differs", f.Name)
		}
		got, err := io.ReadAll(e2ee.NewFileReader(bytes.NewReader(ct), key, prefix, sum))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: read %d bytes, %v", f.Name, len(got), err)
		}
		cts[f.Name] = ct
	}
	for _, n := range v.FileNegative {
		t.Run(n.Name, func(t *testing.T) {
			var f vFile
			for _, c := range v.Files {
				if c.Name == n.File {
					f = c
				}
			}
			altered := assemble(t, cts[n.File], n.Ciphertext)
			sum := sha256.Sum256(altered)
			wantHex(t, "altered ciphertext's SHA-256", sum[:], n.SHA256Hex)
			_, err := io.ReadAll(e2ee.NewFileReader(bytes.NewReader(altered), mustKey32(t, f.Key), [8]byte(mustB64(t, f.NoncePrefix)), sum))
			wantClass(t, err, n.Expect)
		})
	}
}
