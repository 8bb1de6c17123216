package e2ee

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
)

// Public key sizes.
const (
	// Ed25519PublicKeySize is the size of a raw Ed25519 public key.
	Ed25519PublicKeySize = 32
	// X25519PublicKeySize is the size of a raw X25519 public key.
	X25519PublicKeySize = 32
	// P256PublicKeySize is the size of a P-256 public key, for signing and
	// for agreement alike: an uncompressed SEC1 point, 0x04 || x || y.
	P256PublicKeySize = 65
)

// PublicKey is a public key as the protocol publishes it: its algorithm and
// its raw bytes. In JSON it is {"alg", "pub"} with pub in b64u. Whether it
// is a signing or an agreement key depends on where it is used;
// CheckSigning and CheckAgreement say whether it is a valid one.
type PublicKey struct {
	// Alg is AlgEd25519 or AlgP256 for signing, AlgX25519 or AlgP256 for
	// key agreement.
	Alg string
	// Pub is the raw public key: 32 bytes, or 65 for P-256.
	Pub []byte
}

type publicKeyJSON struct {
	Alg string `json:"alg"`
	Pub string `json:"pub"`
}

// MarshalJSON encodes k as {"alg", "pub"}.
func (k PublicKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(publicKeyJSON{Alg: k.Alg, Pub: EncodeB64U(k.Pub)})
}

// UnmarshalJSON decodes {"alg", "pub"}; it checks the base64url, not the
// key: use CheckSigning or CheckAgreement for that.
func (k *PublicKey) UnmarshalJSON(data []byte) error {
	var j publicKeyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return malformed("public key: %v", err)
	}
	pub, err := decodeB64UField("pub", j.Pub, -1)
	if err != nil {
		return err
	}
	*k = PublicKey{Alg: j.Alg, Pub: pub}
	return nil
}

// Equal reports whether k and other are the same key.
func (k PublicKey) Equal(other PublicKey) bool {
	return k.Alg == other.Alg && bytes.Equal(k.Pub, other.Pub)
}

// CheckSigning reports whether k is a valid signing key: an Ed25519 key of
// 32 bytes, or a P-256 point on the curve.
func (k PublicKey) CheckSigning() error {
	switch k.Alg {
	case AlgEd25519:
		if len(k.Pub) != Ed25519PublicKeySize {
			return malformed("ed25519 public key is %d bytes, not %d", len(k.Pub), Ed25519PublicKeySize)
		}
		return nil
	case AlgP256:
		_, err := k.ecdsaKey()
		return err
	}
	return malformed("unknown signing algorithm %q", k.Alg)
}

// CheckAgreement reports whether k is a valid agreement key: an X25519 key
// of 32 bytes, or a P-256 point on the curve.
func (k PublicKey) CheckAgreement() error {
	_, err := k.ecdhKey()
	return err
}

func (k PublicKey) ecdsaKey() (*ecdsa.PublicKey, error) {
	if len(k.Pub) != P256PublicKeySize || k.Pub[0] != 4 {
		return nil, malformed("p256 public key: not a %d-byte uncompressed point", P256PublicKeySize)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.Pub)
	if err != nil {
		return nil, malformed("p256 public key: %v", err)
	}
	return pub, nil
}

func (k PublicKey) ecdhKey() (*ecdh.PublicKey, error) {
	var curve ecdh.Curve
	switch k.Alg {
	case AlgX25519:
		if len(k.Pub) != X25519PublicKeySize {
			return nil, malformed("x25519 public key is %d bytes, not %d", len(k.Pub), X25519PublicKeySize)
		}
		curve = ecdh.X25519()
	case AlgP256:
		if len(k.Pub) != P256PublicKeySize || k.Pub[0] != 4 {
			return nil, malformed("p256 public key: not a %d-byte uncompressed point", P256PublicKeySize)
		}
		curve = ecdh.P256()
	default:
		return nil, malformed("unknown agreement algorithm %q", k.Alg)
	}
	pub, err := curve.NewPublicKey(k.Pub)
	if err != nil {
		return nil, malformed("%s public key: %v", k.Alg, err)
	}
	return pub, nil
}

// Verify checks sig, a signature of message by k. Ed25519 signs the message
// itself; ECDSA P-256 signs its SHA-256, and sig is r || s, each 32 bytes
// big-endian. A signature of the wrong length is ErrMalformed; one that does
// not verify, including an ECDSA r or s that is zero or not below the group
// order, is ErrBadSignature.
func (k PublicKey) Verify(message, sig []byte) error {
	if err := k.CheckSigning(); err != nil {
		return err
	}
	if len(sig) != SignatureSize {
		return malformed("signature is %d bytes, not %d", len(sig), SignatureSize)
	}
	switch k.Alg {
	case AlgEd25519:
		if !ed25519.Verify(ed25519.PublicKey(k.Pub), message, sig) {
			return fmt.Errorf("e2ee: ed25519: %w", ErrBadSignature)
		}
	case AlgP256:
		pub, _ := k.ecdsaKey()
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		h := sha256.Sum256(message)
		if !ecdsa.Verify(pub, h[:], r, s) {
			return fmt.Errorf("e2ee: p256: %w", ErrBadSignature)
		}
	}
	return nil
}

// SigningKey is the private half of an identity key or of a device's
// signing key. It does not change once made, so goroutines may share it.
type SigningKey struct {
	alg string
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
}

// GenerateSigningKey makes a new signing key of alg, AlgEd25519 or
// AlgP256.
func GenerateSigningKey(alg string) (*SigningKey, error) {
	switch alg {
	case AlgEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("e2ee: generate ed25519 key: %w", err)
		}
		return &SigningKey{alg: alg, ed: priv}, nil
	case AlgP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("e2ee: generate p256 key: %w", err)
		}
		return &SigningKey{alg: alg, ec: priv}, nil
	}
	return nil, malformed("unknown signing algorithm %q", alg)
}

// ParseSigningKey reads a signing key from PKCS#8 (DER): Ed25519, or ECDSA
// on P-256. The algorithm follows from the encoding.
func ParseSigningKey(pkcs8 []byte) (*SigningKey, error) {
	key, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, malformed("signing key: PKCS#8: %v", err)
	}
	switch key := key.(type) {
	case ed25519.PrivateKey:
		return &SigningKey{alg: AlgEd25519, ed: key}, nil
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return nil, malformed("signing key: ECDSA on %s, not P-256", key.Curve.Params().Name)
		}
		return &SigningKey{alg: AlgP256, ec: key}, nil
	}
	return nil, malformed("signing key: PKCS#8 holds a %T, not an Ed25519 or P-256 key", key)
}

// Alg returns the key's algorithm, AlgEd25519 or AlgP256.
func (k *SigningKey) Alg() string { return k.alg }

// Public returns the public half of k.
func (k *SigningKey) Public() PublicKey {
	if k.alg == AlgEd25519 {
		return PublicKey{Alg: k.alg, Pub: bytes.Clone(k.ed.Public().(ed25519.PublicKey))}
	}
	pub, err := k.ec.PublicKey.Bytes()
	if err != nil {
		// A P-256 key parsed or generated here is always on the curve.
		panic("e2ee: p256 public key: " + err.Error())
	}
	return PublicKey{Alg: k.alg, Pub: pub}
}

// Sign signs message: Ed25519 over the message itself (deterministic),
// ECDSA P-256 over its SHA-256 (randomized), returning 64 bytes, r || s for
// ECDSA.
func (k *SigningKey) Sign(message []byte) ([]byte, error) {
	if k.alg == AlgEd25519 {
		return ed25519.Sign(k.ed, message), nil
	}
	h := sha256.Sum256(message)
	r, s, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
	if err != nil {
		return nil, fmt.Errorf("e2ee: p256 sign: %w", err)
	}
	sig := make([]byte, SignatureSize)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// MarshalPKCS8 returns the private key in PKCS#8 (DER), the form the key
// backup and the terminal client's key file hold and WebCrypto imports.
func (k *SigningKey) MarshalPKCS8() ([]byte, error) {
	var der []byte
	var err error
	if k.alg == AlgEd25519 {
		der, err = x509.MarshalPKCS8PrivateKey(k.ed)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(k.ec)
	}
	if err != nil {
		return nil, fmt.Errorf("e2ee: %s key to PKCS#8: %w", k.alg, err)
	}
	return der, nil
}

// AgreementKey is the private half of a device's key-agreement key, or of
// the ephemeral key of a room-key envelope. Goroutines may share it.
type AgreementKey struct {
	alg string
	key *ecdh.PrivateKey
}

// GenerateAgreementKey makes a new agreement key of alg, AlgX25519 or
// AlgP256.
func GenerateAgreementKey(alg string) (*AgreementKey, error) {
	curve, err := agreementCurve(alg)
	if err != nil {
		return nil, err
	}
	key, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("e2ee: generate %s key: %w", alg, err)
	}
	return &AgreementKey{alg: alg, key: key}, nil
}

func agreementCurve(alg string) (ecdh.Curve, error) {
	switch alg {
	case AlgX25519:
		return ecdh.X25519(), nil
	case AlgP256:
		return ecdh.P256(), nil
	}
	return nil, malformed("unknown agreement algorithm %q", alg)
}

// ParseAgreementKey reads an agreement key from PKCS#8 (DER): X25519, or an
// EC key on P-256. The algorithm follows from the encoding.
func ParseAgreementKey(pkcs8 []byte) (*AgreementKey, error) {
	key, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, malformed("agreement key: PKCS#8: %v", err)
	}
	switch key := key.(type) {
	case *ecdh.PrivateKey:
		if key.Curve() == ecdh.X25519() {
			return &AgreementKey{alg: AlgX25519, key: key}, nil
		}
	case *ecdsa.PrivateKey:
		// PKCS#8 does not tell ECDSA keys from ECDH keys on the same
		// curve; x509 returns both as *ecdsa.PrivateKey.
		if key.Curve == elliptic.P256() {
			dh, err := key.ECDH()
			if err != nil {
				return nil, malformed("agreement key: %v", err)
			}
			return &AgreementKey{alg: AlgP256, key: dh}, nil
		}
	}
	return nil, malformed("agreement key: PKCS#8 holds a %T, not an X25519 or P-256 key", key)
}

// Alg returns the key's algorithm, AlgX25519 or AlgP256.
func (k *AgreementKey) Alg() string { return k.alg }

// Public returns the public half of k.
func (k *AgreementKey) Public() PublicKey {
	return PublicKey{Alg: k.alg, Pub: k.key.PublicKey().Bytes()}
}

// SharedSecret returns ECDH(k, peer): 32 bytes, the X25519 output or the
// P-256 point's x-coordinate. The peer must be of k's algorithm; an X25519
// peer that yields the all-zero secret (a low-order point) is refused.
func (k *AgreementKey) SharedSecret(peer PublicKey) ([]byte, error) {
	if peer.Alg != k.alg {
		return nil, malformed("%s key cannot agree with a %s key", k.alg, peer.Alg)
	}
	pub, err := peer.ecdhKey()
	if err != nil {
		return nil, err
	}
	z, err := k.key.ECDH(pub)
	if err != nil {
		return nil, malformed("%s agreement: %v", k.alg, err)
	}
	return z, nil
}

// MarshalPKCS8 returns the private key in PKCS#8 (DER). A P-256 key is
// written as an EC key on P-256, the form WebCrypto imports for ECDH.
func (k *AgreementKey) MarshalPKCS8() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return nil, fmt.Errorf("e2ee: %s key to PKCS#8: %w", k.alg, err)
	}
	return der, nil
}
