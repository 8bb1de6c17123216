package e2ee_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// suites are the algorithm choices a client may make: the first choice and
// the fallback for platforms without Ed25519 and X25519.
var suites = []struct {
	name   string
	sigAlg string
	dhAlg  string
}{
	{"ed25519+x25519", e2ee.AlgEd25519, e2ee.AlgX25519},
	{"p256+p256", e2ee.AlgP256, e2ee.AlgP256},
}

// party is a user with one certified device.
type party struct {
	username string
	identity *e2ee.SigningKey
	keys     *e2ee.DeviceKeys
	device   e2ee.Device
}

// MustParty makes a user with a fresh identity key of sigAlg and one
// certified device with keys of dhAlg and sigAlg.
func MustParty(tb testing.TB, username, sigAlg, dhAlg string) party {
	tb.Helper()
	identity, err := e2ee.GenerateSigningKey(sigAlg)
	if err != nil {
		tb.Fatal(err)
	}
	return MustPartyWith(tb, username, identity, dhAlg, sigAlg)
}

// MustPartyWith is MustParty with the identity key given, for a second
// device of the same user.
func MustPartyWith(tb testing.TB, username string, identity *e2ee.SigningKey, dhAlg, sigAlg string) party {
	tb.Helper()
	keys, err := e2ee.NewDeviceKeys(dhAlg, sigAlg)
	if err != nil {
		tb.Fatal(err)
	}
	device, err := e2ee.Certify(identity, username, keys.Device())
	if err != nil {
		tb.Fatal(err)
	}
	return party{username: username, identity: identity, keys: keys, device: device}
}

// seed returns 32 bytes fixed by label: the source of every key, IV and
// salt of the test vectors.
func seed(label string) []byte {
	s := sha256.Sum256([]byte("mapsim-e2ee test vectors/" + label))
	return s[:]
}

// MustSeededSigningKey returns the signing key of alg whose private key is
// seed(label): the Ed25519 seed, or the P-256 scalar.
func MustSeededSigningKey(tb testing.TB, alg, label string) *e2ee.SigningKey {
	tb.Helper()
	var priv any
	switch alg {
	case e2ee.AlgEd25519:
		priv = ed25519.NewKeyFromSeed(seed(label))
	case e2ee.AlgP256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed(label))
		if err != nil {
			tb.Fatal(err)
		}
		priv = k
	default:
		tb.Fatalf("no signing algorithm %q", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := e2ee.ParseSigningKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// MustSeededAgreementKey returns the agreement key of alg whose private key
// is seed(label).
func MustSeededAgreementKey(tb testing.TB, alg, label string) *e2ee.AgreementKey {
	tb.Helper()
	curve := ecdh.X25519()
	if alg == e2ee.AlgP256 {
		curve = ecdh.P256()
	}
	priv, err := curve.NewPrivateKey(seed(label))
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := e2ee.ParseAgreementKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// errorClasses name the sentinel errors as the test vectors do.
var errorClasses = map[string]error{
	"malformed":        e2ee.ErrMalformed,
	"bad_signature":    e2ee.ErrBadSignature,
	"bad_certificate":  e2ee.ErrBadCertificate,
	"altered":          e2ee.ErrAltered,
	"wrong_device":     e2ee.ErrWrongDevice,
	"truncated":        e2ee.ErrTruncated,
	"too_large":        e2ee.ErrTooLarge,
	"wrong_passphrase": e2ee.ErrWrongPassphrase,
}

// errorClass returns the name of the sentinel err wraps.
func errorClass(err error) string {
	if err == nil {
		return "ok"
	}
	for name, sentinel := range errorClasses {
		if errors.Is(err, sentinel) {
			return name
		}
	}
	return fmt.Sprintf("unclassified (%v)", err)
}

// wantClass fails the test unless err is of the named class.
func wantClass(tb testing.TB, err error, class string) {
	tb.Helper()
	if got := errorClass(err); got != class {
		tb.Fatalf("got %s (%v), want %s", got, err, class)
	}
}

// flip returns a copy of b with one bit of byte i changed.
func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}
