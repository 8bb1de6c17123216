package e2ee

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// MessagePrefix starts the text of every encrypted message.
const MessagePrefix = "mse1."

// maxEpochDigits is the length of the largest epoch, 4294967295, in
// decimal.
const maxEpochDigits = 10

// SealedMessage is an encrypted message taken apart: the text of a `text`
// frame in an encrypted chat is
// mse1.<epoch>.<device_id>.<b64u(iv)>.<b64u(ct)>.<b64u(sig)>, and String
// puts it back together.
type SealedMessage struct {
	// Epoch is the epoch whose room key encrypted the message.
	Epoch uint32
	// DeviceID is the sending device's id.
	DeviceID string
	// IV, CT and Sig are the AES-GCM IV, the ciphertext with its tag, and
	// the device's signature.
	IV  []byte
	CT  []byte
	Sig []byte
}

// String returns the message's text: the mse1 string. The epoch is written
// in decimal without leading zeros.
func (m SealedMessage) String() string {
	var b strings.Builder
	b.Grow(len(MessagePrefix) + maxEpochDigits + len(m.DeviceID) + 4 + (len(m.IV)+len(m.CT)+len(m.Sig))*4/3 + 3)
	b.WriteString(MessagePrefix)
	b.WriteString(strconv.FormatUint(uint64(m.Epoch), 10))
	for _, part := range []string{m.DeviceID, EncodeB64U(m.IV), EncodeB64U(m.CT), EncodeB64U(m.Sig)} {
		b.WriteByte('.')
		b.WriteString(part)
	}
	return b.String()
}

// MaxMessageTextBytes returns the largest mse1 text the server accepts when
// plaintext messages may hold maxMessageBytes bytes:
// ceil(maxMessageBytes × 4/3) + 1024, room for the base64url of the
// ciphertext and for the other fields.
func MaxMessageTextBytes(maxMessageBytes int) int {
	return (maxMessageBytes*4+2)/3 + 1024
}

// ParseMessage takes an mse1 text apart and checks its shape, never its
// content: the prefix, a decimal epoch from 1 to 2³²−1 without leading
// zeros, a device id, and canonical base64url for an IV of 12 bytes, a
// ciphertext of at least 16 and a signature of 64. A text longer than
// maxBytes is ErrTooLarge; any other fault is ErrMalformed. A text it
// accepts is exactly the String of what it returns.
func ParseMessage(text string, maxBytes int) (SealedMessage, error) {
	if len(text) > maxBytes {
		return SealedMessage{}, fmt.Errorf("e2ee: message is %d bytes, the limit is %d: %w", len(text), maxBytes, ErrTooLarge)
	}
	rest, ok := strings.CutPrefix(text, MessagePrefix)
	if !ok {
		return SealedMessage{}, malformed("message does not start with %q", MessagePrefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 5 {
		return SealedMessage{}, malformed("message has %d fields after the prefix, not 5", len(parts))
	}
	epoch, err := parseEpoch(parts[0])
	if err != nil {
		return SealedMessage{}, err
	}
	if err := CheckDeviceID(parts[1]); err != nil {
		return SealedMessage{}, err
	}
	m := SealedMessage{Epoch: epoch, DeviceID: parts[1]}
	if m.IV, err = decodeB64UField("iv", parts[2], IVSize); err != nil {
		return SealedMessage{}, err
	}
	if m.CT, err = decodeB64UField("ct", parts[3], -1); err != nil {
		return SealedMessage{}, err
	}
	if len(m.CT) < TagSize {
		return SealedMessage{}, malformed("ct is %d bytes, shorter than a tag", len(m.CT))
	}
	if m.Sig, err = decodeB64UField("sig", parts[4], SignatureSize); err != nil {
		return SealedMessage{}, err
	}
	return m, nil
}

// parseEpoch reads an epoch strictly, so that each epoch has one spelling:
// ASCII digits only (no sign, no space), no leading zero, not 0, at most
// 2³²−1.
func parseEpoch(s string) (uint32, error) {
	if s == "" || len(s) > maxEpochDigits || s[0] == '0' {
		return 0, malformed("epoch %q", chat.Clip(s, 16))
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, malformed("epoch %q", chat.Clip(s, 16))
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxUint32 {
		return 0, malformed("epoch %s is above 2^32-1", s)
	}
	return uint32(n), nil
}

// messageAAD is T("mapsim-e2ee/v1/message", chat, u32(epoch),
// sender_username, device_id, client_id).
func messageAAD(chat string, epoch uint32, senderUsername, deviceID, clientID string) ([]byte, error) {
	c, err := textField("chat", chat)
	if err != nil {
		return nil, err
	}
	if err := checkEpoch(epoch); err != nil {
		return nil, err
	}
	user, err := usernameField(senderUsername)
	if err != nil {
		return nil, err
	}
	if err := CheckDeviceID(deviceID); err != nil {
		return nil, err
	}
	id, err := textField("client_id", clientID)
	if err != nil {
		return nil, err
	}
	return Transcript(labelMessage, c, U32(epoch), user, []byte(deviceID), id), nil
}

// messageSigned is what the device signs: aad || LP(iv) || LP(ct).
func messageSigned(aad, iv, ct []byte) []byte {
	b := make([]byte, 0, len(aad)+8+len(iv)+len(ct))
	return appendLP(appendLP(append(b, aad...), iv), ct)
}

// maxPlaintext keeps a message's ciphertext a field LP can frame.
const maxPlaintext = math.MaxUint32 - TagSize

// EncryptMessage encrypts plaintext, the message's JSON object ({"v": 1,
// "text": …}), under the room key of chat's epoch and signs it with the
// sender's device, returning the mse1 text. clientID is the message's
// client_id (an edit keeps the message's): it is bound into the
// ciphertext, so the server cannot move the text to another message.
func EncryptMessage(roomKey [KeySize]byte, sender *DeviceKeys, chat string, epoch uint32, senderUsername, clientID string, plaintext []byte) (string, error) {
	iv := make([]byte, IVSize)
	rand.Read(iv)
	return encryptMessage(roomKey, sender, chat, epoch, senderUsername, clientID, plaintext, iv)
}

// encryptMessage is EncryptMessage with the IV given, which the test
// vectors fix.
func encryptMessage(roomKey [KeySize]byte, sender *DeviceKeys, chat string, epoch uint32, senderUsername, clientID string, plaintext, iv []byte) (string, error) {
	if len(plaintext) > maxPlaintext {
		return "", fmt.Errorf("e2ee: plaintext of %d bytes: %w", len(plaintext), ErrTooLarge)
	}
	if t := bytes.TrimLeft(plaintext, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(plaintext) {
		return "", malformed("plaintext is not a JSON object")
	}
	if len(iv) != IVSize {
		return "", malformed("iv is %d bytes, not %d", len(iv), IVSize)
	}
	aad, err := messageAAD(chat, epoch, senderUsername, sender.ID, clientID)
	if err != nil {
		return "", err
	}
	m := SealedMessage{Epoch: epoch, DeviceID: sender.ID, IV: iv, CT: newGCM(roomKey[:]).Seal(nil, iv, plaintext, aad)}
	if m.Sig, err = sender.Sig.Sign(messageSigned(aad, m.IV, m.CT)); err != nil {
		return "", err
	}
	return m.String(), nil
}

// DecryptMessage checks and decrypts an mse1 text that senderUsername's
// device sender sent in chat as the message clientID, returning the
// plaintext JSON. roomKey is the key of the epoch the text names
// (ParseMessage tells it); the caller has checked that sender is a
// member's device certified by their pinned identity key, and keeps the
// replay and edit-order checks, which need its history.
//
// The checks run in this order, and the first that fails decides the
// error: the shape (ErrMalformed), that the text names sender's device
// (ErrWrongDevice), the signature (ErrBadSignature), the ciphertext
// (ErrAltered).
func DecryptMessage(roomKey [KeySize]byte, sender Device, chat, senderUsername, clientID, text string) ([]byte, error) {
	m, err := ParseMessage(text, len(text))
	if err != nil {
		return nil, err
	}
	if err := sender.Check(); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	aad, err := messageAAD(chat, m.Epoch, senderUsername, m.DeviceID, clientID)
	if err != nil {
		return nil, err
	}
	if m.DeviceID != sender.ID {
		return nil, fmt.Errorf("e2ee: message from device %s, not %s: %w", m.DeviceID, sender.ID, ErrWrongDevice)
	}
	if err := sender.Sig.Verify(messageSigned(aad, m.IV, m.CT), m.Sig); err != nil {
		return nil, err
	}
	plain, err := newGCM(roomKey[:]).Open(nil, m.IV, m.CT, aad)
	if err != nil {
		return nil, fmt.Errorf("e2ee: message: %w", ErrAltered)
	}
	return plain, nil
}
