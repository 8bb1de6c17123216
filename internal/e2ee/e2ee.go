// Package e2ee implements Mapsim Chat's end-to-end encryption protocol, as
// E2EE.md at the repository root specifies it: identity and device keys,
// device certificates, room-key envelopes, encrypted messages and files, the
// passphrase-protected key backup and safety numbers.
//
// The browser speaks the same protocol with WebCrypto, so every byte that is
// signed, bound as additional data or derived here is spelled out in
// E2EE.md, and testdata/vectors.json pins it: both implementations must
// reproduce those vectors. The server uses this package only to check
// shapes, certificates and signatures; it never holds a private key or a
// room key.
//
// Only Go's standard library is used, and internal/chat for the type of
// the errors.
package e2ee

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Algorithm names, as they appear in the "alg" field of every public key.
// Ed25519 and X25519 are the first choice; P-256 is the fallback for
// platforms without them, for signing (ECDSA with SHA-256) and for key
// agreement (ECDH) alike.
const (
	// AlgEd25519 names Ed25519 signing keys.
	AlgEd25519 = "ed25519"
	// AlgX25519 names X25519 agreement keys.
	AlgX25519 = "x25519"
	// AlgP256 names P-256 keys: ECDSA with SHA-256 where a signing key is
	// wanted, ECDH where an agreement key is.
	AlgP256 = "p256"
)

// Sizes fixed by the protocol.
const (
	// KeySize is the size of a room key, a file key and the backup key:
	// AES-256 keys.
	KeySize = 32
	// IVSize is the size of every AES-GCM IV.
	IVSize = 12
	// TagSize is the size of the AES-GCM tag appended to every ciphertext.
	TagSize = 16
	// SignatureSize is the size of a signature of either algorithm.
	SignatureSize = 64
	// DeviceIDSize is the number of random bytes in a device id; the id
	// itself is their b64u string.
	DeviceIDSize = 16
)

// Labels: the first field of every transcript. Changing one breaks every
// signature and ciphertext made under it, and the other implementation.
const (
	labelDevice         = "mapsim-e2ee/v1/device"
	labelRoomKey        = "mapsim-e2ee/v1/room-key"
	labelEnvelope       = "mapsim-e2ee/v1/room-key-envelope"
	labelMessage        = "mapsim-e2ee/v1/message"
	labelFileChunk      = "mapsim-e2ee/v1/file-chunk"
	labelBackupIdentity = "mapsim-e2ee/v1/backup-identity"
	labelBackupRoomKey  = "mapsim-e2ee/v1/backup-room-key"
	labelSafety         = "mapsim-e2ee/v1/safety"
	labelSafetyNumber   = "mapsim-e2ee/v1/safety-number"
)

// The errors below say why something was refused, in words a client can
// show next to a message it could not open. Every error of this package
// wraps one of them (errors.Is finds it), and each is a *chat.Error, so the
// server can hand its refusals of certificates, envelopes and messages to
// clients unchanged.
var (
	// ErrMalformed means the input does not have the protocol's shape: a
	// wrong length, an unknown algorithm, bad base64url, a bad username.
	ErrMalformed = &chat.Error{Code: chat.EInvalid, Message: "The encrypted data is malformed."}
	// ErrBadSignature means a signature does not verify: the data was not
	// signed by that device for this chat, epoch, sender and message.
	ErrBadSignature = &chat.Error{Code: chat.EInvalid, Message: "The signature does not verify."}
	// ErrBadCertificate means a device is not certified by the identity key
	// it was checked against.
	ErrBadCertificate = &chat.Error{Code: chat.EInvalid, Message: "The device is not certified by this user's identity key."}
	// ErrAltered means a ciphertext does not open: it was altered, or it
	// was made for another chat, epoch, recipient or key.
	ErrAltered = &chat.Error{Code: chat.EInvalid, Message: "The ciphertext was altered."}
	// ErrWrongDevice means an envelope or message names another device than
	// the one it is being opened with or checked against.
	ErrWrongDevice = &chat.Error{Code: chat.EInvalid, Message: "The encrypted data belongs to another device."}
	// ErrTruncated means an encrypted file ends before its last chunk.
	ErrTruncated = &chat.Error{Code: chat.EInvalid, Message: "The encrypted file is truncated."}
	// ErrTooLarge means an input is larger than the bound it is checked
	// against.
	ErrTooLarge = &chat.Error{Code: chat.ETooLarge, Message: "The encrypted data is too large."}
	// ErrWrongPassphrase means the key backup does not open with the
	// passphrase given.
	ErrWrongPassphrase = &chat.Error{Code: chat.EInvalid, Message: "The recovery passphrase is wrong."}
)

// malformed wraps ErrMalformed with what was wrong, for logs and tests; a
// user sees ErrMalformed's sentence.
func malformed(format string, args ...any) error {
	return fmt.Errorf("e2ee: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// b64 is base64url without padding, strict about the unused bits of the
// last character so that every byte string has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// EncodeB64U returns b64u(b): base64url without padding.
func EncodeB64U(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// DecodeB64U decodes base64url without padding, accepting only the
// canonical encoding: characters of the base64url alphabet (no padding, no
// white space, no line breaks, which Go's decoder would otherwise skip) and
// zero unused bits. A string that decodes re-encodes to itself.
func DecodeB64U(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !isB64UChar(s[i]) {
			return nil, malformed("base64url: byte %d is not in the alphabet", i)
		}
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, malformed("base64url: %v", err)
	}
	return b, nil
}

func isB64UChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// decodeB64UField decodes a b64u field that must hold exactly size bytes
// (any size when size is negative), naming the field in the error.
func decodeB64UField(name, s string, size int) ([]byte, error) {
	b, err := DecodeB64U(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if size >= 0 && len(b) != size {
		return nil, malformed("%s is %d bytes, not %d", name, len(b), size)
	}
	return b, nil
}

// U32 returns u32(n): n as 4 bytes, big-endian. Epochs and chunk indices
// enter transcripts this way.
func U32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// LP returns LP(x): u32(len(x)) || x. It panics on a field of 2³² bytes or
// more, which no caller of this package can produce: every input that
// reaches a transcript is bounded first.
func LP(x []byte) []byte { return appendLP(make([]byte, 0, 4+len(x)), x) }

func appendLP(dst, x []byte) []byte {
	if uint64(len(x)) > math.MaxUint32 {
		panic("e2ee: a transcript field is 4 GiB or more")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
	return append(dst, x...)
}

// Transcript returns T(label, f1, …, fn) = LP(label) || LP(f1) || … ||
// LP(fn): the bytes that are signed or bound as additional data. Fields are
// raw bytes; strings go in as their UTF-8 bytes, usernames lower-cased,
// epochs as U32(epoch).
func Transcript(label string, fields ...[]byte) []byte {
	n := 4 + len(label)
	for _, f := range fields {
		n += 4 + len(f)
	}
	t := appendLP(make([]byte, 0, n), []byte(label))
	for _, f := range fields {
		t = appendLP(t, f)
	}
	return t
}

// usernameField returns a username as it enters a transcript: its UTF-8
// bytes with ASCII letters lower-cased. Only ASCII is lower-cased, so that
// every language does it alike (JavaScript's toLowerCase and Go's
// strings.ToLower differ outside ASCII); a name in another script enters
// as the server spells it (its PRECIS form, see chat.CheckUsername), which
// is how every client receives it. Control characters and invalid UTF-8 are
// refused.
func usernameField(username string) ([]byte, error) {
	if username == "" {
		return nil, malformed("empty username")
	}
	if !utf8.ValidString(username) {
		return nil, malformed("username is not valid UTF-8")
	}
	b := []byte(username)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			return nil, malformed("username %q: control characters are not allowed", chat.Clip(username, 40))
		}
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b, nil
}

// textField returns a chat name or client id as it enters a transcript: its
// UTF-8 bytes. Invalid UTF-8 is refused because the browser cannot hold it
// (TextEncoder would replace it), so its transcript would differ.
func textField(name, s string) ([]byte, error) {
	if s == "" {
		return nil, malformed("empty %s", name)
	}
	if !utf8.ValidString(s) {
		return nil, malformed("%s is not valid UTF-8", name)
	}
	return []byte(s), nil
}

// checkEpoch refuses epoch 0: epochs are numbered from 1.
func checkEpoch(epoch uint32) error {
	if epoch == 0 {
		return malformed("epoch 0: epochs start at 1")
	}
	return nil
}

// newGCM returns AES-256-GCM under key, with the protocol's 12-byte IV and
// 16-byte tag.
func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		// Every key reaching here is KeySize bytes by construction.
		panic("e2ee: " + err.Error())
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic("e2ee: " + err.Error())
	}
	return gcm
}
