package e2ee

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// roomKeyCTSize is the size of an envelope's ciphertext: a room key and its
// tag.
const roomKeyCTSize = KeySize + TagSize

// Envelope carries a room key to one device: the room key encrypted under a
// key agreed between an ephemeral key and the recipient device's agreement
// key, signed by the sending device. In JSON it is {"recipient",
// "recipient_device", "eph_pub", "iv", "ct", "sig"}.
type Envelope struct {
	// Recipient is the recipient's username and RecipientDevice their
	// device's id.
	Recipient       string
	RecipientDevice string
	// EphPub is the ephemeral public key, of the recipient device's
	// agreement algorithm.
	EphPub []byte
	// IV and CT are the AES-GCM IV and the encrypted room key with its tag.
	IV []byte
	CT []byte
	// Sig is the sending device's signature of the envelope transcript.
	Sig []byte
}

type envelopeJSON struct {
	Recipient       string `json:"recipient"`
	RecipientDevice string `json:"recipient_device"`
	EphPub          string `json:"eph_pub"`
	IV              string `json:"iv"`
	CT              string `json:"ct"`
	Sig             string `json:"sig"`
}

// MarshalJSON encodes e as POST /chats/{chat}/epochs carries it.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return json.Marshal(envelopeJSON{
		Recipient: e.Recipient, RecipientDevice: e.RecipientDevice,
		EphPub: EncodeB64U(e.EphPub), IV: EncodeB64U(e.IV), CT: EncodeB64U(e.CT), Sig: EncodeB64U(e.Sig),
	})
}

// UnmarshalJSON decodes an envelope, checking its base64url;
// VerifyEnvelope checks the rest.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	var j envelopeJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("envelope: %v", err)
	}
	out := Envelope{Recipient: j.Recipient, RecipientDevice: j.RecipientDevice}
	for _, f := range []struct {
		name string
		in   string
		out  *[]byte
	}{{"eph_pub", j.EphPub, &out.EphPub}, {"iv", j.IV, &out.IV}, {"ct", j.CT, &out.CT}, {"sig", j.Sig, &out.Sig}} {
		b, err := decodeB64UField(f.name, f.in, -1)
		if err != nil {
			return err
		}
		*f.out = b
	}
	*e = out
	return nil
}

// envelopeFields are the transcript fields of an envelope that do not come
// from the envelope itself, checked and encoded once.
type envelopeFields struct {
	chat, epoch, sender, senderDevice, recipient, recipientDevice []byte
}

func newEnvelopeFields(chat string, epoch uint32, senderUsername, senderDevice, recipientUsername, recipientDevice string) (envelopeFields, error) {
	var f envelopeFields
	var err error
	if f.chat, err = textField("chat", chat); err != nil {
		return f, err
	}
	if err = checkEpoch(epoch); err != nil {
		return f, err
	}
	f.epoch = U32(epoch)
	if f.sender, err = usernameField(senderUsername); err != nil {
		return f, err
	}
	if f.recipient, err = usernameField(recipientUsername); err != nil {
		return f, err
	}
	if err = CheckDeviceID(senderDevice); err != nil {
		return f, fmt.Errorf("sender: %w", err)
	}
	if err = CheckDeviceID(recipientDevice); err != nil {
		return f, fmt.Errorf("recipient: %w", err)
	}
	f.senderDevice, f.recipientDevice = []byte(senderDevice), []byte(recipientDevice)
	return f, nil
}

// info is T("mapsim-e2ee/v1/room-key", chat, u32(epoch), recipient_username,
// recipient_device_id): the HKDF info and the AEAD's additional data.
func (f envelopeFields) info() []byte {
	return Transcript(labelRoomKey, f.chat, f.epoch, f.recipient, f.recipientDevice)
}

// transcript is what the sending device signs: T("mapsim-e2ee/v1/room-key-envelope",
// chat, u32(epoch), sender_username, sender_device_id, recipient_username,
// recipient_device_id, eph_pub, iv, ct).
func (f envelopeFields) transcript(e Envelope) []byte {
	return Transcript(labelEnvelope, f.chat, f.epoch, f.sender, f.senderDevice, f.recipient, f.recipientDevice, e.EphPub, e.IV, e.CT)
}

// envelopeKey is K = HKDF(Z, eph_pub || recipient.dh.pub, info, 32).
func envelopeKey(z, ephPub, recipientPub, info []byte) []byte {
	salt := make([]byte, 0, len(ephPub)+len(recipientPub))
	salt = append(append(salt, ephPub...), recipientPub...)
	k, err := hkdf.Key(sha256.New, z, salt, string(info), KeySize)
	if err != nil {
		// Only a length beyond 255 hash blocks fails, and 32 is not.
		panic("e2ee: hkdf: " + err.Error())
	}
	return k
}

// SealEnvelope makes the envelope that carries roomKey for chat's epoch to
// recipient, one device of recipientUsername, from the sender's device. The
// caller has checked the recipient device's certificate (VerifyDevice):
// this only checks its shape.
func SealEnvelope(sender *DeviceKeys, senderUsername, chat string, epoch uint32, recipientUsername string, recipient Device, roomKey [KeySize]byte) (Envelope, error) {
	if err := recipient.DH.CheckAgreement(); err != nil {
		return Envelope{}, fmt.Errorf("recipient dh key: %w", err)
	}
	eph, err := GenerateAgreementKey(recipient.DH.Alg)
	if err != nil {
		return Envelope{}, err
	}
	iv := make([]byte, IVSize)
	rand.Read(iv)
	return sealEnvelope(sender, senderUsername, chat, epoch, recipientUsername, recipient, roomKey, eph, iv)
}

// sealEnvelope is SealEnvelope with the ephemeral key and the IV given,
// which the test vectors fix.
func sealEnvelope(sender *DeviceKeys, senderUsername, chat string, epoch uint32, recipientUsername string, recipient Device,
	roomKey [KeySize]byte, eph *AgreementKey, iv []byte) (Envelope, error) {
	if err := recipient.Check(); err != nil {
		return Envelope{}, fmt.Errorf("recipient: %w", err)
	}
	f, err := newEnvelopeFields(chat, epoch, senderUsername, sender.ID, recipientUsername, recipient.ID)
	if err != nil {
		return Envelope{}, err
	}
	if len(iv) != IVSize {
		return Envelope{}, malformed("iv is %d bytes, not %d", len(iv), IVSize)
	}
	z, err := eph.SharedSecret(recipient.DH)
	if err != nil {
		return Envelope{}, err
	}
	ephPub := eph.Public().Pub
	info := f.info()
	k := envelopeKey(z, ephPub, recipient.DH.Pub, info)
	e := Envelope{
		Recipient: recipientUsername, RecipientDevice: recipient.ID,
		EphPub: ephPub, IV: iv, CT: newGCM(k).Seal(nil, iv, roomKey[:], info),
	}
	if e.Sig, err = sender.Sig.Sign(f.transcript(e)); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// checkShape checks the envelope's own fields: lengths, and that the
// ephemeral key is a key of some agreement algorithm.
func (e Envelope) checkShape() error {
	switch len(e.EphPub) {
	case X25519PublicKeySize:
	case P256PublicKeySize:
		if err := (PublicKey{Alg: AlgP256, Pub: e.EphPub}).CheckAgreement(); err != nil {
			return fmt.Errorf("eph_pub: %w", err)
		}
	default:
		return malformed("eph_pub is %d bytes, not %d or %d", len(e.EphPub), X25519PublicKeySize, P256PublicKeySize)
	}
	if len(e.IV) != IVSize {
		return malformed("iv is %d bytes, not %d", len(e.IV), IVSize)
	}
	if len(e.CT) != roomKeyCTSize {
		return malformed("ct is %d bytes, not %d", len(e.CT), roomKeyCTSize)
	}
	if len(e.Sig) != SignatureSize {
		return malformed("sig is %d bytes, not %d", len(e.Sig), SignatureSize)
	}
	return nil
}

// verifyEnvelope checks the shape of an envelope and of everything its
// transcript holds, returning the transcript fields; the callers check the
// signature.
func verifyEnvelope(sender Device, senderUsername, chat string, epoch uint32, e Envelope) (envelopeFields, error) {
	if err := sender.Check(); err != nil {
		return envelopeFields{}, fmt.Errorf("sender: %w", err)
	}
	f, err := newEnvelopeFields(chat, epoch, senderUsername, sender.ID, e.Recipient, e.RecipientDevice)
	if err != nil {
		return f, err
	}
	if err := e.checkShape(); err != nil {
		return f, err
	}
	return f, nil
}

// VerifyEnvelope checks an envelope the sender's device sent for chat's
// epoch: its shape and its signature. This is the server's check; it says
// nothing about the ciphertext, which only the recipient can open. A
// signature that does not verify is ErrBadSignature.
func VerifyEnvelope(sender Device, senderUsername, chat string, epoch uint32, e Envelope) error {
	f, err := verifyEnvelope(sender, senderUsername, chat, epoch, e)
	if err != nil {
		return err
	}
	return sender.Sig.Verify(f.transcript(e), e.Sig)
}

// OpenEnvelope opens an envelope for the recipient's device and returns the
// room key of chat's epoch. The caller has checked that sender is a
// member's device certified by their pinned identity key (VerifyDevice).
//
// The checks run in this order, and the first that fails decides the
// error: the shape (ErrMalformed), that the envelope is this device's
// (ErrWrongDevice), the signature (ErrBadSignature), the ephemeral key's
// algorithm (ErrMalformed), the ciphertext (ErrAltered).
func OpenEnvelope(recipient *DeviceKeys, recipientUsername, chat string, epoch uint32, sender Device, senderUsername string, e Envelope) ([KeySize]byte, error) {
	var roomKey [KeySize]byte
	f, err := verifyEnvelope(sender, senderUsername, chat, epoch, e)
	if err != nil {
		return roomKey, err
	}
	me, err := usernameField(recipientUsername)
	if err != nil {
		return roomKey, err
	}
	if e.RecipientDevice != recipient.ID || string(me) != string(f.recipient) {
		return roomKey, fmt.Errorf("e2ee: envelope for device %s of %s: %w", e.RecipientDevice, f.recipient, ErrWrongDevice)
	}
	if err := sender.Sig.Verify(f.transcript(e), e.Sig); err != nil {
		return roomKey, err
	}
	own := recipient.DH.Public()
	if len(e.EphPub) != len(own.Pub) {
		return roomKey, malformed("eph_pub is not a %s key", own.Alg)
	}
	z, err := recipient.DH.SharedSecret(PublicKey{Alg: own.Alg, Pub: e.EphPub})
	if err != nil {
		return roomKey, err
	}
	info := f.info()
	k := envelopeKey(z, e.EphPub, own.Pub, info)
	plain, err := newGCM(k).Open(nil, e.IV, e.CT, info)
	if err != nil {
		return roomKey, fmt.Errorf("e2ee: envelope: %w", ErrAltered)
	}
	copy(roomKey[:], plain)
	return roomKey, nil
}

// NewRoomKey returns a fresh room key: 32 random bytes.
func NewRoomKey() [KeySize]byte {
	var k [KeySize]byte
	rand.Read(k[:])
	return k
}
