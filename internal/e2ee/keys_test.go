package e2ee_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestSignVerify(t *testing.T) {
	for _, alg := range []string{e2ee.AlgEd25519, e2ee.AlgP256} {
		t.Run(alg, func(t *testing.T) {
			key, err := e2ee.GenerateSigningKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("the transcript")
			sig, err := key.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != e2ee.SignatureSize {
				t.Fatalf("signature of %d bytes", len(sig))
			}
			pub := key.Public()
			if err := pub.Verify(msg, sig); err != nil {
				t.Fatal(err)
			}
			wantClass(t, pub.Verify([]byte("another transcript"), sig), "bad_signature")
			wantClass(t, pub.Verify(msg, flip(sig, 5)), "bad_signature")
			wantClass(t, pub.Verify(msg, flip(sig, 40)), "bad_signature")
			wantClass(t, pub.Verify(msg, sig[:63]), "malformed")
			wantClass(t, pub.Verify(msg, append(sig, 0)), "malformed")
			other, _ := e2ee.GenerateSigningKey(alg)
			wantClass(t, other.Public().Verify(msg, sig), "bad_signature")
		})
	}
}

// TestP256SignatureScalars checks r || s as WebCrypto reads it: a zero
// scalar or one not below the group order is refused; s and n−s both verify
// (ECDSA signatures are malleable, and neither Go nor WebCrypto insists on
// low s: nothing in the protocol identifies a message by its signature).
func TestP256SignatureScalars(t *testing.T) {
	key, err := e2ee.GenerateSigningKey(e2ee.AlgP256)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("scalars")
	sig, err := key.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	compose := func(r, s *big.Int) []byte {
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	allOnes := new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 32))
	tests := []struct {
		name string
		sig  []byte
		want string
	}{
		{"as signed", sig, "ok"},
		{"s replaced by n-s", compose(r, new(big.Int).Sub(n, s)), "ok"},
		{"r = 0", compose(big.NewInt(0), s), "bad_signature"},
		{"s = 0", compose(r, big.NewInt(0)), "bad_signature"},
		{"r = n", compose(n, s), "bad_signature"},
		{"s = n", compose(r, n), "bad_signature"},
		{"r = 2^256-1", compose(allOnes, s), "bad_signature"},
		{"s = 2^256-1", compose(r, allOnes), "bad_signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantClass(t, key.Public().Verify(msg, tt.sig), tt.want)
		})
	}
}

// TestEd25519NonCanonicalS refuses the malleated signature S+L, which a
// lax verifier would accept.
func TestEd25519NonCanonicalS(t *testing.T) {
	key, err := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("canonical")
	sig, _ := key.Sign(msg)
	wantClass(t, key.Public().Verify(msg, ed25519AddL(sig)), "bad_signature")
}

// ed25519AddL returns sig with its S (little-endian) increased by the group
// order L.
func ed25519AddL(sig []byte) []byte {
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) []byte {
		out := make([]byte, len(b))
		for i := range b {
			out[i] = b[len(b)-1-i]
		}
		return out
	}
	s := new(big.Int).SetBytes(le(sig[32:]))
	s.Add(s, l)
	out := append([]byte(nil), sig[:32]...)
	return append(out, le(s.FillBytes(make([]byte, 32)))...)
}

// TestKnownAnswers imports the keys of RFC 8032's first Ed25519 test and of
// RFC 7748's X25519 example through PKCS#8 and reproduces their outputs.
func TestKnownAnswers(t *testing.T) {
	der, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(mustHex(t, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := e2ee.ParseSigningKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sk.Public().Pub); got != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Fatalf("ed25519 public key %s", got)
	}
	sig, _ := sk.Sign(nil)
	if got := hex.EncodeToString(sig); got != "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"+
		"224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" {
		t.Fatalf("ed25519 signature %s", got)
	}

	x, err := ecdh.X25519().NewPrivateKey(mustHex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	der, _ = x509.MarshalPKCS8PrivateKey(x)
	ak, err := e2ee.ParseAgreementKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ak.Public().Pub); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("x25519 public key %s", got)
	}
	z, err := ak.SharedSecret(e2ee.PublicKey{Alg: e2ee.AlgX25519, Pub: mustHex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(z); got != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Fatalf("x25519 shared secret %s", got)
	}
}

// TestPKCS8 round-trips every kind of private key and pins the encodings
// of the 25519 keys, which are RFC 8410's and WebCrypto's byte for byte.
func TestPKCS8(t *testing.T) {
	for _, alg := range []string{e2ee.AlgEd25519, e2ee.AlgP256} {
		t.Run("sig "+alg, func(t *testing.T) {
			key, _ := e2ee.GenerateSigningKey(alg)
			der, err := key.MarshalPKCS8()
			if err != nil {
				t.Fatal(err)
			}
			back, err := e2ee.ParseSigningKey(der)
			if err != nil {
				t.Fatal(err)
			}
			if back.Alg() != alg || !back.Public().Equal(key.Public()) {
				t.Fatalf("parsed %s key %x, want %x", back.Alg(), back.Public().Pub, key.Public().Pub)
			}
			if alg == e2ee.AlgEd25519 && (len(der) != 48 || hex.EncodeToString(der[:16]) != "302e020100300506032b657004220420") {
				t.Fatalf("ed25519 PKCS#8 %x", der)
			}
			_, err = e2ee.ParseAgreementKey(der)
			if alg == e2ee.AlgEd25519 {
				wantClass(t, err, "malformed")
			} else if err != nil {
				// A P-256 key is a P-256 key for either use; PKCS#8
				// cannot say which.
				t.Fatal(err)
			}
		})
	}
	for _, alg := range []string{e2ee.AlgX25519, e2ee.AlgP256} {
		t.Run("dh "+alg, func(t *testing.T) {
			key, _ := e2ee.GenerateAgreementKey(alg)
			der, err := key.MarshalPKCS8()
			if err != nil {
				t.Fatal(err)
			}
			back, err := e2ee.ParseAgreementKey(der)
			if err != nil {
				t.Fatal(err)
			}
			if back.Alg() != alg || !back.Public().Equal(key.Public()) {
				t.Fatalf("parsed %s key %x, want %x", back.Alg(), back.Public().Pub, key.Public().Pub)
			}
			if alg == e2ee.AlgX25519 {
				if len(der) != 48 || hex.EncodeToString(der[:16]) != "302e020100300506032b656e04220420" {
					t.Fatalf("x25519 PKCS#8 %x", der)
				}
				_, err := e2ee.ParseSigningKey(der)
				wantClass(t, err, "malformed")
			}
		})
	}
	t.Run("other curves and garbage", func(t *testing.T) {
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(p384)
		for _, in := range [][]byte{der, []byte("not DER"), nil} {
			_, err := e2ee.ParseSigningKey(in)
			wantClass(t, err, "malformed")
			_, err = e2ee.ParseAgreementKey(in)
			wantClass(t, err, "malformed")
		}
	})
}

func TestPublicKeyChecks(t *testing.T) {
	p256, _ := e2ee.GenerateSigningKey(e2ee.AlgP256)
	point := p256.Public().Pub
	offCurve := append([]byte(nil), point...)
	offCurve[64] ^= 1
	compressed := append([]byte{2 + point[64]&1}, point[1:33]...)
	x, _ := e2ee.GenerateAgreementKey(e2ee.AlgX25519)
	ed, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	tests := []struct {
		name      string
		key       e2ee.PublicKey
		signing   string
		agreement string
	}{
		{"p256", e2ee.PublicKey{Alg: e2ee.AlgP256, Pub: point}, "ok", "ok"},
		{"p256 off the curve", e2ee.PublicKey{Alg: e2ee.AlgP256, Pub: offCurve}, "malformed", "malformed"},
		{"p256 compressed", e2ee.PublicKey{Alg: e2ee.AlgP256, Pub: compressed}, "malformed", "malformed"},
		{"p256 infinity", e2ee.PublicKey{Alg: e2ee.AlgP256, Pub: []byte{0}}, "malformed", "malformed"},
		{"x25519", x.Public(), "malformed", "ok"},
		{"x25519 short", e2ee.PublicKey{Alg: e2ee.AlgX25519, Pub: x.Public().Pub[:31]}, "malformed", "malformed"},
		{"ed25519", ed.Public(), "ok", "malformed"},
		{"ed25519 long", e2ee.PublicKey{Alg: e2ee.AlgEd25519, Pub: append(ed.Public().Pub, 0)}, "malformed", "malformed"},
		{"unknown", e2ee.PublicKey{Alg: "rsa", Pub: ed.Public().Pub}, "malformed", "malformed"},
		{"upper-case alg", e2ee.PublicKey{Alg: "Ed25519", Pub: ed.Public().Pub}, "malformed", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantClass(t, tt.key.CheckSigning(), tt.signing)
			wantClass(t, tt.key.CheckAgreement(), tt.agreement)
		})
	}
}

func TestSharedSecret(t *testing.T) {
	for _, alg := range []string{e2ee.AlgX25519, e2ee.AlgP256} {
		t.Run(alg, func(t *testing.T) {
			a, _ := e2ee.GenerateAgreementKey(alg)
			b, _ := e2ee.GenerateAgreementKey(alg)
			ab, err := a.SharedSecret(b.Public())
			if err != nil {
				t.Fatal(err)
			}
			ba, err := b.SharedSecret(a.Public())
			if err != nil {
				t.Fatal(err)
			}
			if len(ab) != 32 || !bytes.Equal(ab, ba) {
				t.Fatalf("secrets %x and %x", ab, ba)
			}
		})
	}
	x, _ := e2ee.GenerateAgreementKey(e2ee.AlgX25519)
	p, _ := e2ee.GenerateAgreementKey(e2ee.AlgP256)
	_, err := x.SharedSecret(p.Public())
	wantClass(t, err, "malformed")
	// A low-order point gives the all-zero secret, which would make the
	// envelope key public.
	_, err = x.SharedSecret(e2ee.PublicKey{Alg: e2ee.AlgX25519, Pub: make([]byte, 32)})
	wantClass(t, err, "malformed")
}

func TestPublicKeyJSON(t *testing.T) {
	key, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	data, err := json.Marshal(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"alg":"ed25519","pub":"` + e2ee.EncodeB64U(key.Public().Pub) + `"}`
	if string(data) != want {
		t.Fatalf("JSON %s, want %s", data, want)
	}
	var back e2ee.PublicKey
	if err := json.Unmarshal(data, &back); err != nil || !back.Equal(key.Public()) {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	for _, bad := range []string{`{"alg":"ed25519","pub":"AA=="}`, `{"alg":"ed25519","pub":7}`, `[]`} {
		wantClass(t, json.Unmarshal([]byte(bad), &back), "malformed")
	}
}

func TestGenerateRefusesUnknownAlgorithms(t *testing.T) {
	for _, alg := range []string{"", "rsa", "x25519", "P-256"} {
		_, err := e2ee.GenerateSigningKey(alg)
		wantClass(t, err, "malformed")
	}
	for _, alg := range []string{"", "x448", "ed25519", "P-256"} {
		_, err := e2ee.GenerateAgreementKey(alg)
		wantClass(t, err, "malformed")
	}
	_, err := e2ee.NewDeviceKeys(e2ee.AlgEd25519, e2ee.AlgEd25519)
	wantClass(t, err, "malformed")
	_, err = e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgX25519)
	wantClass(t, err, "malformed")
}
