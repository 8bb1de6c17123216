package e2ee

import (
	"crypto/rand"
	"encoding/json"
	"fmt"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Device is a device as it is published and as other members see it: its
// id, its public agreement and signing keys, and the certificate its
// owner's identity key made for them. In JSON it is {"device_id", "dh":
// {"alg", "pub"}, "sig": {"alg", "pub"}, "cert"}.
type Device struct {
	// ID is the b64u string of 16 random bytes; the string itself is what
	// transcripts hold.
	ID string
	// DH is the agreement key envelopes to this device are made for.
	DH PublicKey
	// Sig is the key that signs the device's envelopes and messages.
	Sig PublicKey
	// Cert is the identity key's signature of the device transcript.
	Cert []byte
}

type deviceJSON struct {
	ID   string    `json:"device_id"`
	DH   PublicKey `json:"dh"`
	Sig  PublicKey `json:"sig"`
	Cert string    `json:"cert"`
}

// MarshalJSON encodes d as POST /keys/devices takes it.
func (d Device) MarshalJSON() ([]byte, error) {
	return json.Marshal(deviceJSON{ID: d.ID, DH: d.DH, Sig: d.Sig, Cert: EncodeB64U(d.Cert)})
}

// UnmarshalJSON decodes a device; VerifyDevice checks it.
func (d *Device) UnmarshalJSON(data []byte) error {
	var j deviceJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("device: %v", err)
	}
	cert, err := decodeB64UField("cert", j.Cert, -1)
	if err != nil {
		return err
	}
	*d = Device{ID: j.ID, DH: j.DH, Sig: j.Sig, Cert: cert}
	return nil
}

// NewDeviceID returns a fresh device id: b64u of 16 random bytes.
func NewDeviceID() string {
	b := make([]byte, DeviceIDSize)
	rand.Read(b)
	return EncodeB64U(b)
}

// CheckDeviceID reports whether id is a device id: the canonical b64u
// string of 16 bytes (22 characters).
func CheckDeviceID(id string) error {
	if _, err := decodeB64UField("device id", id, DeviceIDSize); err != nil {
		return err
	}
	return nil
}

// Check reports whether d has the shape of a device: a device id, a valid
// agreement key and a valid signing key. It does not look at the
// certificate; VerifyDevice does.
func (d Device) Check() error {
	if err := CheckDeviceID(d.ID); err != nil {
		return err
	}
	if err := d.DH.CheckAgreement(); err != nil {
		return fmt.Errorf("device dh key: %w", err)
	}
	if err := d.Sig.CheckSigning(); err != nil {
		return fmt.Errorf("device sig key: %w", err)
	}
	return nil
}

// certTranscript is T("mapsim-e2ee/v1/device", username, device_id, dh.alg,
// dh.pub, sig.alg, sig.pub), the bytes an identity key signs to certify a
// device.
func certTranscript(username string, d Device) ([]byte, error) {
	user, err := usernameField(username)
	if err != nil {
		return nil, err
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return Transcript(labelDevice, user, []byte(d.ID), []byte(d.DH.Alg), d.DH.Pub, []byte(d.Sig.Alg), d.Sig.Pub), nil
}

// Certify returns d with its certificate: the identity key's signature of
// the device transcript for username. Only a device the user holds should
// be certified: the certificate is what makes every other member trust its
// envelopes and messages.
func Certify(identity *SigningKey, username string, d Device) (Device, error) {
	t, err := certTranscript(username, d)
	if err != nil {
		return Device{}, err
	}
	cert, err := identity.Sign(t)
	if err != nil {
		return Device{}, err
	}
	d.Cert = cert
	return d, nil
}

// VerifyDevice checks that d is a well-formed device certified by identity
// for username. The server calls it before it publishes a device; a client
// calls it with the identity key it pinned for the user before it trusts
// anything the device signed. A certificate that does not verify is
// ErrBadCertificate.
func VerifyDevice(identity PublicKey, username string, d Device) error {
	if err := identity.CheckSigning(); err != nil {
		return fmt.Errorf("identity key: %w", err)
	}
	t, err := certTranscript(username, d)
	if err != nil {
		return err
	}
	if len(d.Cert) != SignatureSize {
		return malformed("certificate is %d bytes, not %d", len(d.Cert), SignatureSize)
	}
	if err := identity.Verify(t, d.Cert); err != nil {
		return fmt.Errorf("e2ee: device %s of %s: %w", d.ID, chat.Clip(username, 40), ErrBadCertificate)
	}
	return nil
}

// DeviceKeys are a device's private keys, which never leave it.
type DeviceKeys struct {
	// ID is the device id, as in Device.
	ID string
	// DH opens the envelopes made for the device.
	DH *AgreementKey
	// Sig signs the device's envelopes and messages.
	Sig *SigningKey
}

// NewDeviceKeys makes a device: a fresh id, an agreement key of dhAlg and a
// signing key of sigAlg. Certify its Device with the identity key before
// publishing it.
func NewDeviceKeys(dhAlg, sigAlg string) (*DeviceKeys, error) {
	dh, err := GenerateAgreementKey(dhAlg)
	if err != nil {
		return nil, err
	}
	sig, err := GenerateSigningKey(sigAlg)
	if err != nil {
		return nil, err
	}
	return &DeviceKeys{ID: NewDeviceID(), DH: dh, Sig: sig}, nil
}

// Device returns the public side of the device, without a certificate.
func (k *DeviceKeys) Device() Device {
	return Device{ID: k.ID, DH: k.DH.Public(), Sig: k.Sig.Public()}
}
