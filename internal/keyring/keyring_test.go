package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// MustStore opens a fresh SQLite store in the test's temp dir.
func MustStore(tb testing.TB) *store.DB {
	tb.Helper()
	st, err := store.Open(context.Background(), store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(tb.TempDir(), "chat.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// MustSecret returns a new random SECRET_KEY.
func MustSecret(tb testing.TB) []byte {
	tb.Helper()
	b := make([]byte, keyring.SecretSize)
	rand.Read(b)
	return b
}

// MustRing opens the key ring on st.
func MustRing(tb testing.TB, st keyring.Store, secret []byte) *keyring.Ring {
	tb.Helper()
	r, err := keyring.Open(context.Background(), st, secret, now)
	if err != nil {
		tb.Fatalf("keyring.Open: %v", err)
	}
	return r
}

// MustVersionCount returns how many key versions the store holds.
func MustVersionCount(tb testing.TB, st keyring.Store) int {
	tb.Helper()
	kvs, err := st.KeyVersions(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return len(kvs)
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	ring := MustRing(t, MustStore(t), MustSecret(t))
	big := make([]byte, 1<<16)
	rand.Read(big)
	tests := []struct {
		name           string
		plaintext, aad []byte
	}{
		{"text", []byte("hello, world"), []byte("chat=1 user=2 client=abc")},
		{"empty message", []byte{}, []byte("aad")},
		{"no aad", []byte("hello"), nil},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}, []byte{0}},
		{"64 KiB", big, []byte("file")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, sealed := ring.Seal(tt.plaintext, tt.aad)
			if version != ring.Current() {
				t.Fatalf("sealed with version %d, current is %d", version, ring.Current())
			}
			if len(tt.plaintext) >= 4 && bytes.Contains(sealed, tt.plaintext) {
				t.Fatal("the sealed bytes contain the plaintext")
			}
			got, err := ring.Open(version, sealed, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("opened %q, sealed %q", got, tt.plaintext)
			}
			if _, again := ring.Seal(tt.plaintext, tt.aad); bytes.Equal(again, sealed) {
				t.Fatal("sealing the same plaintext twice gave the same bytes: the nonce is not fresh")
			}
		})
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	t.Parallel()
	ring := MustRing(t, MustStore(t), MustSecret(t))
	aad := []byte("chat=1 user=2 client=abc")
	version, sealed := ring.Seal([]byte("meet at noon"), aad)
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		version int64
		sealed  []byte
		aad     []byte
	}{
		{"nonce changed", version, flip(0), aad},
		{"ciphertext changed", version, flip(len(sealed) / 2), aad},
		{"tag changed", version, flip(len(sealed) - 1), aad},
		{"truncated", version, sealed[:len(sealed)-1], aad},
		{"only a nonce", version, sealed[:24], aad},
		{"empty", version, nil, aad},
		{"aad of another row", version, sealed, []byte("chat=1 user=3 client=abc")},
		{"aad missing", version, sealed, nil},
		{"unknown version", version + 1, sealed, aad},
		{"version zero", 0, sealed, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ring.Open(tt.version, tt.sealed, tt.aad); err == nil {
				t.Fatalf("opened tampered input to %q", got)
			}
		})
	}
}

func TestOpenWithAnotherSecret(t *testing.T) {
	t.Parallel()
	st := MustStore(t)
	MustRing(t, st, MustSecret(t))

	ring, err := keyring.Open(context.Background(), st, MustSecret(t), now)
	if !errors.Is(err, keyring.ErrSecretMismatch) {
		t.Fatalf("keyring.Open with another secret = %v, %v; want ErrSecretMismatch", ring, err)
	}
	if !strings.Contains(err.Error(), "SECRET_KEY") {
		t.Errorf("error does not tell the operator what to check: %v", err)
	}
	if n := MustVersionCount(t, st); n != 1 {
		t.Fatalf("a refused start left %d key versions, want 1", n)
	}
}

func TestReopenKeepsHistoryReadable(t *testing.T) {
	t.Parallel()
	st := MustStore(t)
	secret := MustSecret(t)
	first := MustRing(t, st, secret)
	v1, old := first.Seal([]byte("from the first start"), []byte("aad"))

	second := MustRing(t, st, secret)
	if second.Current() == v1 {
		t.Fatalf("the second start reuses key version %d", v1)
	}
	if second.Len() != 2 || MustVersionCount(t, st) != 2 {
		t.Fatalf("after two starts the ring holds %d versions and the store %d, want 2 and 2", second.Len(), MustVersionCount(t, st))
	}
	got, err := second.Open(v1, old, []byte("aad"))
	if err != nil || string(got) != "from the first start" {
		t.Fatalf("history after restart = %q, %v", got, err)
	}
	v2, sealed := second.Seal([]byte("new"), nil)
	if v2 != second.Current() || v2 == v1 {
		t.Fatalf("sealed with version %d, want the new current %d", v2, second.Current())
	}
	// A ring still running (another node) reads the newer version from
	// the store (TestRingOpensAnotherNodesVersion).
	if got, err := first.Open(v2, sealed, nil); err != nil || string(got) != "new" {
		t.Fatalf("the first ring opened the second's version as %q, %v", got, err)
	}
	if aead, ok := second.AEAD(v1); !ok || aead == nil {
		t.Fatalf("AEAD(%d) = %v, %v", v1, aead, ok)
	}
	if _, ok := second.AEAD(v2 + 1); ok {
		t.Fatal("AEAD of an unknown version")
	}
}

func TestRewrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := MustStore(t)
	oldSecret, newSecret := MustSecret(t), MustSecret(t)
	MustRing(t, st, oldSecret)
	ring := MustRing(t, st, oldSecret)
	version, sealed := ring.Seal([]byte("history"), []byte("aad"))

	t.Run("from the wrong secret changes nothing", func(t *testing.T) {
		if _, err := keyring.Rewrap(ctx, st, MustSecret(t), newSecret); !errors.Is(err, keyring.ErrSecretMismatch) {
			t.Fatalf("Rewrap from a wrong secret = %v, want ErrSecretMismatch", err)
		}
		_, err := keyring.Open(ctx, st, newSecret, now)
		if !errors.Is(err, keyring.ErrSecretMismatch) {
			t.Fatalf("after a refused rewrap the new secret opens the store: %v", err)
		}
	})
	t.Run("to the new secret", func(t *testing.T) {
		n, err := keyring.Rewrap(ctx, st, oldSecret, newSecret)
		if err != nil || n != 2 {
			t.Fatalf("Rewrap = %d, %v; want 2 versions", n, err)
		}
		ring, err := keyring.Open(ctx, st, newSecret, now)
		if err != nil {
			t.Fatalf("the new secret does not open the rewrapped store: %v", err)
		}
		if got, err := ring.Open(version, sealed, []byte("aad")); err != nil || string(got) != "history" {
			t.Fatalf("history under the new secret = %q, %v", got, err)
		}
		if _, err := keyring.Open(ctx, st, oldSecret, now); !errors.Is(err, keyring.ErrSecretMismatch) {
			t.Fatalf("the old secret still opens the store: %v", err)
		}
	})
}

func TestSigningKey(t *testing.T) {
	t.Parallel()
	a, b := MustSecret(t), MustSecret(t)
	ka := keyring.SigningKey(a)
	if len(ka) != 32 {
		t.Fatalf("signing key is %d bytes", len(ka))
	}
	if !bytes.Equal(ka, keyring.SigningKey(bytes.Clone(a))) {
		t.Fatal("the signing key changes between calls: tokens would not survive a restart")
	}
	if bytes.Equal(ka, keyring.SigningKey(b)) {
		t.Fatal("two secrets give one signing key")
	}
	if bytes.Equal(ka, a) {
		t.Fatal("SECRET_KEY is used directly as the signing key")
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	rand.Read(raw)
	long := make([]byte, 64)
	rand.Read(long)

	accepted := []struct {
		name   string
		secret string
		want   []byte // nil: any key of 32 or more bytes
	}{
		{"base64", base64.StdEncoding.EncodeToString(raw), raw},
		{"base64 with a newline", base64.StdEncoding.EncodeToString(raw) + "\n", raw},
		{"base64 url alphabet", base64.URLEncoding.EncodeToString(raw), raw},
		{"base64 without padding", base64.RawStdEncoding.EncodeToString(raw), raw},
		{"base64 of 64 bytes", base64.StdEncoding.EncodeToString(long), long},
		{"hex", hex.EncodeToString(raw), nil},
		{"hex in capitals", strings.ToUpper(hex.EncodeToString(raw)), nil},
		{"long random string", "Tq7#vLp2!zR9wXk4$mN8bH3jF6dS1gYa", nil},
		{"passphrase", "correct horse battery staple glue river", nil},
	}
	for _, tt := range accepted {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			key, err := keyring.ParseSecret(tt.secret)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if len(key) < keyring.SecretSize {
				t.Fatalf("key of %d bytes", len(key))
			}
			if tt.want != nil && !bytes.Equal(key, tt.want) {
				t.Fatalf("key = %x, want the decoded %x", key, tt.want)
			}
			if again, _ := keyring.ParseSecret(tt.secret); !bytes.Equal(again, key) {
				t.Fatal("the same secret parses to different keys")
			}
		})
	}

	refused := []string{
		"",
		"   ",
		"short",
		"s3cr3t-but-31-characters-long!!"[:31],
		base64.StdEncoding.EncodeToString(raw[:16]),
		"your-secret-key-change-me-in-production",
		"your-secret-key-here-0123456789abcdefghij",
		"CHANGE-ME-IN-PRODUCTION-0123456789ABCDEF",
		"changeme-changeme-changeme-changeme",
		"replace-with-a-long-random-value-0123456789",
		"example-key-for-the-readme-0123456789abcdef",
		"insecure-development-key-0123456789abcdefgh",
		"default-key-0123456789abcdefghijklmnopqrstu",
		"mypassword-is-very-long-0123456789abcdefghij",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		// Published in the README of the project Mapsim Chat grew from.
		"k7z2Fz0x+Jz9oZB0X9c0Zp+6Zp0ZP4x1y1z4Y8k=",
		" k7z2Fz0x+Jz9oZB0X9c0Zp+6Zp0ZP4x1y1z4Y8k=\n",
	}
	for _, secret := range refused {
		t.Run("refuses "+secret, func(t *testing.T) {
			key, err := keyring.ParseSecret(secret)
			if err == nil {
				t.Fatalf("accepted, key %x", key)
			}
			if len(strings.TrimSpace(secret)) >= 8 && strings.Contains(err.Error(), secret) {
				t.Fatalf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestLoadOrCreateSecretFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "secret.key")

	secret, created, err := keyring.LoadOrCreateSecretFile(path)
	if err != nil || !created {
		t.Fatalf("first call = created %v, %v", created, err)
	}
	if len(secret) != keyring.SecretSize {
		t.Fatalf("generated a %d-byte secret", len(secret))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("secret file mode %o, want 600", perm)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data folder mode %v, %v; want 700", di.Mode().Perm(), err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Fatalf("data folder holds %v (%v), want only secret.key", entries, err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := keyring.ParseSecret(string(text)); err != nil || !bytes.Equal(parsed, secret) {
		t.Fatalf("the saved file parses to %x, %v; want %x", parsed, err, secret)
	}

	again, created, err := keyring.LoadOrCreateSecretFile(path)
	if err != nil || created || !bytes.Equal(again, secret) {
		t.Fatalf("second call = %x, created %v, %v; want the saved secret", again, created, err)
	}

	other, _, err := keyring.LoadOrCreateSecretFile(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil || bytes.Equal(other, secret) {
		t.Fatalf("a second data folder got the same secret (%v)", err)
	}

	t.Run("placeholder in the file", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(bad, []byte("your-secret-key-change-me-in-production\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := keyring.LoadOrCreateSecretFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("err = %v, want one naming %s", err, bad)
		}
	})
}

// Two servers starting at once on one data folder must end up with one
// secret, and neither may fail to start.
func TestLoadOrCreateSecretFileConcurrent(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "secret.key")
		const starters = 8
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			secrets = make([][]byte, starters)
			errs    = make([]error, starters)
			created = make([]bool, starters)
		)
		for i := range starters {
			wg.Go(func() {
				<-start
				secrets[i], created[i], errs[i] = keyring.LoadOrCreateSecretFile(path)
			})
		}
		close(start)
		wg.Wait()
		makers := 0
		for i := range starters {
			if errs[i] != nil {
				t.Fatalf("round %d: starter %d failed: %v", round, i, errs[i])
			}
			if !bytes.Equal(secrets[i], secrets[0]) {
				t.Fatalf("round %d: starters got different secrets", round)
			}
			if created[i] {
				makers++
			}
		}
		if makers != 1 {
			t.Fatalf("round %d: %d starters say they created the secret, want 1", round, makers)
		}
		if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || len(entries) != 1 {
			t.Fatalf("round %d: folder holds %v (%v), want only secret.key", round, entries, err)
		}
	}
}

// TestLoadOnlyReads: Load opens what every start sealed and stores no new
// key version; with another secret it refuses, like Open; its ring cannot
// seal.
func TestLoadOnlyReads(t *testing.T) {
	t.Parallel()
	st := MustStore(t)
	secret := MustSecret(t)
	v1, sealed := MustRing(t, st, secret).Seal([]byte("kept"), []byte("aad"))
	ring, err := keyring.Load(context.Background(), st, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Open(v1, sealed, []byte("aad")); err != nil || string(got) != "kept" {
		t.Fatalf("Load's ring opened %q, %v", got, err)
	}
	if n := MustVersionCount(t, st); n != 1 {
		t.Fatalf("Load stored a key version: %d", n)
	}
	if _, err := keyring.Load(context.Background(), st, MustSecret(t)); !errors.Is(err, keyring.ErrSecretMismatch) {
		t.Fatalf("Load with another secret: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a loaded ring sealed")
		}
	}()
	ring.Seal([]byte("x"), nil)
}

// TestRingOpensAnotherNodesVersion: several nodes share one database, and
// each makes its own key version when it starts. A node opens what a node
// started after it sealed (a message it fills or syncs, a file), by reading
// the newer version from the store when first asked for it.
func TestRingOpensAnotherNodesVersion(t *testing.T) {
	st, secret := MustStore(t), MustSecret(t)
	first, err := keyring.Open(context.Background(), st, secret, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := keyring.Open(context.Background(), st, secret, now)
	if err != nil {
		t.Fatal(err)
	}
	version, sealed := second.Seal([]byte("from the second node"), []byte("aad"))
	if version == first.Current() {
		t.Fatal("the second node made no version of its own")
	}
	got, err := first.Open(version, sealed, []byte("aad"))
	if err != nil || string(got) != "from the second node" {
		t.Fatalf("the first node opened %q, %v", got, err)
	}
	if _, ok := first.AEAD(version); !ok {
		t.Fatal("the first node has no cipher for the second's version")
	}
	if _, err := first.Open(version+100, sealed, []byte("aad")); err == nil {
		t.Fatal("a version no node made opened")
	}
	if _, err := first.Open(version, sealed, []byte("other aad")); err == nil {
		t.Fatal("a body opened with another row's additional data")
	}
}
