package e2ee_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// testIterations keeps the backup tests fast; DeriveBackupKey itself
// refuses so few.
const testIterations = 1000

// MustBackupKey derives a backup key with testIterations.
func MustBackupKey(tb testing.TB, passphrase string, salt []byte) [32]byte {
	tb.Helper()
	k, err := e2ee.DeriveBackupKeyForTest(passphrase, salt, testIterations)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestDeriveBackupKeyRefuses(t *testing.T) {
	salt := bytes.Repeat([]byte{1}, 16)
	tests := []struct {
		name       string
		passphrase string
		salt       []byte
		iterations int
	}{
		{"one iteration under the floor", "correct horse", salt, e2ee.MinBackupIterations - 1},
		{"a thousand iterations", "correct horse", salt, 1000},
		{"zero iterations", "correct horse", salt, 0},
		{"above the ceiling", "correct horse", salt, e2ee.MaxBackupIterations + 1},
		{"empty passphrase", "", salt, e2ee.MinBackupIterations},
		{"short salt", "correct horse", salt[:15], e2ee.MinBackupIterations},
		{"no salt", "correct horse", nil, e2ee.MinBackupIterations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e2ee.DeriveBackupKey(tt.passphrase, tt.salt, tt.iterations)
			wantClass(t, err, "malformed")
		})
	}
	_, err := (e2ee.BackupKDF{Alg: "argon2id", Iterations: e2ee.MinBackupIterations, Salt: salt}).Key("correct horse")
	wantClass(t, err, "malformed")
}

// TestDeriveBackupKeyProduction derives once at the production count, the
// one derivation at full cost in this package's tests, and checks that it
// is the PBKDF2 the vectors pin at a lower count.
func TestDeriveBackupKeyProduction(t *testing.T) {
	if testing.Short() {
		t.Skip("600,000 PBKDF2 iterations")
	}
	kdf := e2ee.NewBackupKDF()
	if kdf.Alg != "pbkdf2-sha256" || kdf.Iterations < 600_000 || len(kdf.Salt) != 16 {
		t.Fatalf("new backups use %+v", kdf)
	}
	got, err := kdf.Key("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	want, err := e2ee.DeriveBackupKeyForTest("correct horse battery staple", kdf.Salt, kdf.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatal("the production derivation is not PBKDF2-HMAC-SHA-256")
	}
}

func TestIdentityBackup(t *testing.T) {
	salt := bytes.Repeat([]byte{2}, 16)
	key := MustBackupKey(t, "correct horse", salt)
	wrong := MustBackupKey(t, "correct horse.", salt)
	for _, alg := range []string{e2ee.AlgEd25519, e2ee.AlgP256} {
		t.Run(alg, func(t *testing.T) {
			identity, _ := e2ee.GenerateSigningKey(alg)
			box, err := e2ee.SealIdentityBackup(key, "Alice", identity)
			if err != nil {
				t.Fatal(err)
			}
			back, err := e2ee.OpenIdentityBackup(key, "alice", box)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Public().Equal(identity.Public()) {
				t.Fatal("restored another key")
			}
			// The restored key signs for the published identity.
			sig, _ := back.Sign([]byte("x"))
			if err := identity.Public().Verify([]byte("x"), sig); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name     string
				key      [32]byte
				username string
				box      e2ee.SealedBox
				want     string
			}{
				{"wrong passphrase", wrong, "alice", box, "wrong_passphrase"},
				{"another user's backup", key, "bob", box, "wrong_passphrase"},
				{"flipped bit", key, "alice", e2ee.SealedBox{IV: box.IV, CT: flip(box.CT, 20)}, "wrong_passphrase"},
				{"short iv", key, "alice", e2ee.SealedBox{IV: box.IV[:8], CT: box.CT}, "wrong_passphrase"},
				{"no ciphertext", key, "alice", e2ee.SealedBox{IV: box.IV}, "wrong_passphrase"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					k, err := e2ee.OpenIdentityBackup(tt.key, tt.username, tt.box)
					wantClass(t, err, tt.want)
					if k != nil {
						t.Fatal("a refused backup returned a key")
					}
				})
			}
		})
	}
}

// TestIdentityBackupContents opens backups whose plaintext is not a
// matching key pair: with the right passphrase that is no wrong passphrase
// but a malformed backup.
func TestIdentityBackupContents(t *testing.T) {
	key := MustBackupKey(t, "correct horse", bytes.Repeat([]byte{3}, 16))
	ed, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	other, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	der, _ := ed.MarshalPKCS8()
	x, _ := e2ee.GenerateAgreementKey(e2ee.AlgX25519)
	xder, _ := x.MarshalPKCS8()
	aad := refT("mapsim-e2ee/v1/backup-identity", []byte("alice"))
	iv := make([]byte, 12)
	tests := []struct {
		name  string
		plain string
		want  string
	}{
		{"as sealed", `{"alg":"ed25519","private":"` + e2ee.EncodeB64U(der) + `","pub":"` + e2ee.EncodeB64U(ed.Public().Pub) + `"}`, "ok"},
		{"another public key", `{"alg":"ed25519","private":"` + e2ee.EncodeB64U(der) + `","pub":"` + e2ee.EncodeB64U(other.Public().Pub) + `"}`, "malformed"},
		{"another algorithm named", `{"alg":"p256","private":"` + e2ee.EncodeB64U(der) + `","pub":"` + e2ee.EncodeB64U(ed.Public().Pub) + `"}`, "malformed"},
		{"an agreement key", `{"alg":"x25519","private":"` + e2ee.EncodeB64U(xder) + `","pub":"` + e2ee.EncodeB64U(x.Public().Pub) + `"}`, "malformed"},
		{"standard base64", `{"alg":"ed25519","private":"` + e2ee.EncodeB64U(der) + `=","pub":"` + e2ee.EncodeB64U(ed.Public().Pub) + `"}`, "malformed"},
		{"not JSON", `ed25519`, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			box := e2ee.SealedBox{IV: iv, CT: refGCM(t, key[:]).Seal(nil, iv, []byte(tt.plain), aad)}
			_, err := e2ee.OpenIdentityBackup(key, "alice", box)
			wantClass(t, err, tt.want)
		})
	}
}

func TestRoomKeyBackup(t *testing.T) {
	key := MustBackupKey(t, "correct horse", bytes.Repeat([]byte{4}, 16))
	wrong := MustBackupKey(t, "wrong horse", bytes.Repeat([]byte{4}, 16))
	roomKey := e2ee.NewRoomKey()
	item, err := e2ee.SealRoomKeyBackup(key, "alice", "group:g1", 9, roomKey)
	if err != nil {
		t.Fatal(err)
	}
	moved := func(chat string, epoch uint32) e2ee.RoomKeyBackup {
		i := item
		i.Chat, i.Epoch = chat, epoch
		return i
	}
	tests := []struct {
		name     string
		key      [32]byte
		username string
		item     e2ee.RoomKeyBackup
		want     string
	}{
		{"as sealed", key, "ALICE", item, "ok"},
		{"moved to another epoch", key, "alice", moved("group:g1", 10), "altered"},
		{"moved to another chat", key, "alice", moved("group:g2", 9), "altered"},
		{"another user's", key, "bob", item, "altered"},
		{"another backup key", wrong, "alice", item, "altered"},
		{"flipped bit", key, "alice", e2ee.RoomKeyBackup{Chat: item.Chat, Epoch: item.Epoch, IV: item.IV, CT: flip(item.CT, 0)}, "altered"},
		{"epoch 0", key, "alice", moved("group:g1", 0), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e2ee.OpenRoomKeyBackup(tt.key, tt.username, tt.item)
			wantClass(t, err, tt.want)
			if err == nil && got != roomKey {
				t.Fatal("opened another key")
			}
		})
	}
}

func TestBackupJSON(t *testing.T) {
	key := MustBackupKey(t, "correct horse", bytes.Repeat([]byte{5}, 16))
	identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	box, err := e2ee.SealIdentityBackup(key, "alice", identity)
	if err != nil {
		t.Fatal(err)
	}
	header := e2ee.BackupHeader{KDF: e2ee.NewBackupKDF(), Identity: box}
	data, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kdf":{"alg":"pbkdf2-sha256","iterations":600000,"salt":"` + e2ee.EncodeB64U(header.KDF.Salt) +
		`"},"identity":{"iv":"` + e2ee.EncodeB64U(box.IV) + `","ct":"` + e2ee.EncodeB64U(box.CT) + `"}}`
	if string(data) != want {
		t.Fatalf("header %s\nwant   %s", data, want)
	}
	var back e2ee.BackupHeader
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := e2ee.OpenIdentityBackup(key, "alice", back.Identity); err != nil {
		t.Fatal(err)
	}

	item, _ := e2ee.SealRoomKeyBackup(key, "alice", "group:g1", 9, e2ee.NewRoomKey())
	data, _ = json.Marshal(item)
	want = `{"chat":"group:g1","epoch":9,"iv":"` + e2ee.EncodeB64U(item.IV) + `","ct":"` + e2ee.EncodeB64U(item.CT) + `"}`
	if string(data) != want {
		t.Fatalf("item %s\nwant %s", data, want)
	}
	var backItem e2ee.RoomKeyBackup
	if err := json.Unmarshal(data, &backItem); err != nil {
		t.Fatal(err)
	}
	if _, err := e2ee.OpenRoomKeyBackup(key, "alice", backItem); err != nil {
		t.Fatal(err)
	}
	wantClass(t, json.Unmarshal([]byte(`{"chat":"g","epoch":1,"iv":"A","ct":""}`), &backItem), "malformed")
	wantClass(t, json.Unmarshal([]byte(`{"alg":"pbkdf2-sha256","iterations":1,"salt":"a/b"}`), &back.KDF), "malformed")
}
