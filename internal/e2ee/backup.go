package e2ee

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Key backup parameters.
const (
	// BackupKDFAlg names the backup's key derivation in its header.
	BackupKDFAlg = "pbkdf2-sha256"
	// MinBackupIterations is the fewest PBKDF2 iterations a backup key is
	// derived with, OWASP's figure for PBKDF2-HMAC-SHA-256. A backup header
	// asking for fewer is refused: a server that lowered the count would
	// make a stolen backup cheap to guess.
	MinBackupIterations = 600_000
	// MaxBackupIterations bounds the count a header may ask for, so that a
	// hostile server cannot make a restoring client spin for hours. It is
	// a local limit, not part of the protocol.
	MaxBackupIterations = 10_000_000
	// BackupSaltSize is the size of the backup's PBKDF2 salt.
	BackupSaltSize = 16
)

// BackupKDF is the key derivation of a backup, as its header states it:
// {"alg": "pbkdf2-sha256", "iterations", "salt"}.
type BackupKDF struct {
	// Alg is BackupKDFAlg.
	Alg string
	// Iterations is the PBKDF2 iteration count.
	Iterations int
	// Salt is 16 random bytes.
	Salt []byte
}

type backupKDFJSON struct {
	Alg        string `json:"alg"`
	Iterations int    `json:"iterations"`
	Salt       string `json:"salt"`
}

// MarshalJSON encodes k as the backup header holds it.
func (k BackupKDF) MarshalJSON() ([]byte, error) {
	return json.Marshal(backupKDFJSON{Alg: k.Alg, Iterations: k.Iterations, Salt: EncodeB64U(k.Salt)})
}

// UnmarshalJSON decodes the kdf of a backup header; Key checks it.
func (k *BackupKDF) UnmarshalJSON(data []byte) error {
	var j backupKDFJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("backup kdf: %v", err)
	}
	salt, err := decodeB64UField("salt", j.Salt, -1)
	if err != nil {
		return err
	}
	*k = BackupKDF{Alg: j.Alg, Iterations: j.Iterations, Salt: salt}
	return nil
}

// NewBackupKDF returns the key derivation of a new backup: a fresh salt and
// MinBackupIterations.
func NewBackupKDF() BackupKDF {
	salt := make([]byte, BackupSaltSize)
	rand.Read(salt)
	return BackupKDF{Alg: BackupKDFAlg, Iterations: MinBackupIterations, Salt: salt}
}

// Key derives the backup key from passphrase with k's parameters.
func (k BackupKDF) Key(passphrase string) ([KeySize]byte, error) {
	if k.Alg != BackupKDFAlg {
		return [KeySize]byte{}, malformed("backup kdf %q, not %q", k.Alg, BackupKDFAlg)
	}
	return DeriveBackupKey(passphrase, k.Salt, k.Iterations)
}

// DeriveBackupKey returns backup_key = PBKDF2-HMAC-SHA-256(passphrase,
// salt, iterations, 32 bytes). The passphrase is taken as its UTF-8 bytes,
// exactly as typed (no normalization, no trimming); the salt must be 16
// bytes and iterations between MinBackupIterations and
// MaxBackupIterations.
func DeriveBackupKey(passphrase string, salt []byte, iterations int) ([KeySize]byte, error) {
	if iterations < MinBackupIterations || iterations > MaxBackupIterations {
		return [KeySize]byte{}, malformed("backup kdf: %d iterations, not %d to %d", iterations, MinBackupIterations, MaxBackupIterations)
	}
	return deriveBackupKey(passphrase, salt, iterations)
}

// deriveBackupKey is DeriveBackupKey without the floor on iterations, for
// the test vectors, whose derivation must stay fast under the race
// detector. Nothing outside tests calls it with fewer.
func deriveBackupKey(passphrase string, salt []byte, iterations int) ([KeySize]byte, error) {
	var key [KeySize]byte
	if passphrase == "" {
		return key, malformed("empty passphrase")
	}
	if len(salt) != BackupSaltSize {
		return key, malformed("backup salt is %d bytes, not %d", len(salt), BackupSaltSize)
	}
	if iterations < 1 {
		return key, malformed("backup kdf: %d iterations", iterations)
	}
	k, err := pbkdf2.Key(sha256.New, passphrase, salt, iterations, KeySize)
	if err != nil {
		return key, fmt.Errorf("e2ee: pbkdf2: %w", err)
	}
	copy(key[:], k)
	return key, nil
}

// SealedBox is an AES-GCM ciphertext and its IV: {"iv", "ct"}.
type SealedBox struct {
	// IV is the 12-byte IV.
	IV []byte
	// CT is the ciphertext with its tag.
	CT []byte
}

type sealedBoxJSON struct {
	IV string `json:"iv"`
	CT string `json:"ct"`
}

// MarshalJSON encodes b as {"iv", "ct"}.
func (b SealedBox) MarshalJSON() ([]byte, error) {
	return json.Marshal(sealedBoxJSON{IV: EncodeB64U(b.IV), CT: EncodeB64U(b.CT)})
}

// UnmarshalJSON decodes {"iv", "ct"}.
func (b *SealedBox) UnmarshalJSON(data []byte) error {
	var j sealedBoxJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("sealed box: %v", err)
	}
	iv, err := decodeB64UField("iv", j.IV, -1)
	if err != nil {
		return err
	}
	ct, err := decodeB64UField("ct", j.CT, -1)
	if err != nil {
		return err
	}
	*b = SealedBox{IV: iv, CT: ct}
	return nil
}

// BackupHeader is what PUT /keys/backup stores: the key derivation and the
// encrypted identity key.
type BackupHeader struct {
	KDF      BackupKDF `json:"kdf"`
	Identity SealedBox `json:"identity"`
}

// identityBackup is the plaintext of the identity backup. The fields are in
// this order, and encoding/json writes them without spaces, so the bytes
// are those of JavaScript's JSON.stringify({alg, private, pub}).
type identityBackup struct {
	Alg     string `json:"alg"`
	Private string `json:"private"`
	Pub     string `json:"pub"`
}

// backupSeal seals with the backup key; the iv is the caller's, so that
// the vectors can fix it.
func backupSeal(backupKey [KeySize]byte, iv, plain, aad []byte) SealedBox {
	return SealedBox{IV: iv, CT: newGCM(backupKey[:]).Seal(nil, iv, plain, aad)}
}

func backupOpen(backupKey [KeySize]byte, box SealedBox, aad []byte) ([]byte, bool) {
	if len(box.IV) != IVSize || len(box.CT) < TagSize {
		return nil, false
	}
	plain, err := newGCM(backupKey[:]).Open(nil, box.IV, box.CT, aad)
	return plain, err == nil
}

func randomIV() []byte {
	iv := make([]byte, IVSize)
	rand.Read(iv)
	return iv
}

// SealIdentityBackup encrypts the identity key for username's backup:
// AEAD(backup_key, iv, {"alg", "private": b64u(PKCS#8), "pub"},
// aad = T("mapsim-e2ee/v1/backup-identity", username)).
func SealIdentityBackup(backupKey [KeySize]byte, username string, identity *SigningKey) (SealedBox, error) {
	return sealIdentityBackup(backupKey, username, identity, randomIV())
}

func sealIdentityBackup(backupKey [KeySize]byte, username string, identity *SigningKey, iv []byte) (SealedBox, error) {
	plain, err := identityBackupPlaintext(identity)
	if err != nil {
		return SealedBox{}, err
	}
	user, err := usernameField(username)
	if err != nil {
		return SealedBox{}, err
	}
	return backupSeal(backupKey, iv, plain, Transcript(labelBackupIdentity, user)), nil
}

// identityBackupPlaintext is the JSON the identity backup encrypts.
func identityBackupPlaintext(identity *SigningKey) ([]byte, error) {
	der, err := identity.MarshalPKCS8()
	if err != nil {
		return nil, err
	}
	return json.Marshal(identityBackup{Alg: identity.Alg(), Private: EncodeB64U(der), Pub: EncodeB64U(identity.Public().Pub)})
}

// OpenIdentityBackup decrypts username's identity key from its backup. A
// backup that does not open is ErrWrongPassphrase: with the user's own
// backup, a wrong passphrase is by far the likeliest cause. One that opens
// but holds something else than a matching key pair is ErrMalformed.
func OpenIdentityBackup(backupKey [KeySize]byte, username string, box SealedBox) (*SigningKey, error) {
	user, err := usernameField(username)
	if err != nil {
		return nil, err
	}
	plain, ok := backupOpen(backupKey, box, Transcript(labelBackupIdentity, user))
	if !ok {
		return nil, fmt.Errorf("e2ee: identity backup: %w", ErrWrongPassphrase)
	}
	var b identityBackup
	if err := json.Unmarshal(plain, &b); err != nil {
		return nil, malformed("identity backup: %v", err)
	}
	der, err := decodeB64UField("private", b.Private, -1)
	if err != nil {
		return nil, err
	}
	pub, err := decodeB64UField("pub", b.Pub, -1)
	if err != nil {
		return nil, err
	}
	key, err := ParseSigningKey(der)
	if err != nil {
		return nil, err
	}
	if !key.Public().Equal(PublicKey{Alg: b.Alg, Pub: pub}) {
		return nil, malformed("identity backup: the private key is not the %s key it names", b.Alg)
	}
	return key, nil
}

// RoomKeyBackup is one room key in the backup, as POST
// /keys/backup/room-keys takes it: {"chat", "epoch", "iv", "ct"}.
type RoomKeyBackup struct {
	// Chat and Epoch say whose room key it is; both are bound into the
	// ciphertext.
	Chat  string
	Epoch uint32
	// IV and CT are the AES-GCM IV and the encrypted room key.
	IV []byte
	CT []byte
}

type roomKeyBackupJSON struct {
	Chat  string `json:"chat"`
	Epoch uint32 `json:"epoch"`
	IV    string `json:"iv"`
	CT    string `json:"ct"`
}

// MarshalJSON encodes the item.
func (b RoomKeyBackup) MarshalJSON() ([]byte, error) {
	return json.Marshal(roomKeyBackupJSON{Chat: b.Chat, Epoch: b.Epoch, IV: EncodeB64U(b.IV), CT: EncodeB64U(b.CT)})
}

// UnmarshalJSON decodes an item.
func (b *RoomKeyBackup) UnmarshalJSON(data []byte) error {
	var j roomKeyBackupJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("room key backup: %v", err)
	}
	iv, err := decodeB64UField("iv", j.IV, -1)
	if err != nil {
		return err
	}
	ct, err := decodeB64UField("ct", j.CT, -1)
	if err != nil {
		return err
	}
	*b = RoomKeyBackup{Chat: j.Chat, Epoch: j.Epoch, IV: iv, CT: ct}
	return nil
}

// roomKeyBackupAAD is T("mapsim-e2ee/v1/backup-room-key", username, chat,
// u32(epoch)).
func roomKeyBackupAAD(username, chat string, epoch uint32) ([]byte, error) {
	user, err := usernameField(username)
	if err != nil {
		return nil, err
	}
	c, err := textField("chat", chat)
	if err != nil {
		return nil, err
	}
	if err := checkEpoch(epoch); err != nil {
		return nil, err
	}
	return Transcript(labelBackupRoomKey, user, c, U32(epoch)), nil
}

// SealRoomKeyBackup encrypts the room key of chat's epoch for username's
// backup.
func SealRoomKeyBackup(backupKey [KeySize]byte, username, chat string, epoch uint32, roomKey [KeySize]byte) (RoomKeyBackup, error) {
	return sealRoomKeyBackup(backupKey, username, chat, epoch, roomKey, randomIV())
}

func sealRoomKeyBackup(backupKey [KeySize]byte, username, chat string, epoch uint32, roomKey [KeySize]byte, iv []byte) (RoomKeyBackup, error) {
	aad, err := roomKeyBackupAAD(username, chat, epoch)
	if err != nil {
		return RoomKeyBackup{}, err
	}
	box := backupSeal(backupKey, iv, roomKey[:], aad)
	return RoomKeyBackup{Chat: chat, Epoch: epoch, IV: box.IV, CT: box.CT}, nil
}

// OpenRoomKeyBackup decrypts a room key from username's backup. Call it
// after OpenIdentityBackup has shown the backup key right: an item that
// then does not open was altered or moved to another chat or epoch, and
// is ErrAltered.
func OpenRoomKeyBackup(backupKey [KeySize]byte, username string, item RoomKeyBackup) ([KeySize]byte, error) {
	var roomKey [KeySize]byte
	aad, err := roomKeyBackupAAD(username, item.Chat, item.Epoch)
	if err != nil {
		return roomKey, err
	}
	plain, ok := backupOpen(backupKey, SealedBox{IV: item.IV, CT: item.CT}, aad)
	if !ok {
		return roomKey, fmt.Errorf("e2ee: room key backup for %s epoch %d: %w", chat.Clip(item.Chat, 40), item.Epoch, ErrAltered)
	}
	if len(plain) != KeySize {
		return roomKey, malformed("room key backup holds %d bytes, not %d", len(plain), KeySize)
	}
	copy(roomKey[:], plain)
	return roomKey, nil
}
