// Package keyring keeps the keys that protect data at rest. SECRET_KEY is
// never used directly: HKDF-SHA256 derives a key-wrapping key and a
// token-signing key from it under distinct labels. Each server start makes a
// fresh session key, wraps it and stores it as a new key version; older
// versions are unwrapped into memory so that history stays readable.
package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"golang.org/x/crypto/chacha20poly1305"
)

// Labels for HKDF and for additional data. Changing one orphans everything
// derived or sealed under it.
const (
	labelWrap = "mapsim-chat/v1/key-wrapping"
	labelSign = "mapsim-chat/v1/token-signing"
	wrapAAD   = "mapsim-chat/v1/session-key"
	// labelMessage starts every message body's additional data.
	labelMessage = "mapsim-chat/v1/message\x00"
)

// SecretSize is the size of a generated SECRET_KEY in bytes.
const SecretSize = 32

// ErrSecretMismatch means a stored key version does not unwrap with the
// configured SECRET_KEY.
var ErrSecretMismatch = errors.New("SECRET_KEY does not match this database: a stored key version does not unwrap with it. " +
	"Start with the SECRET_KEY this database was created with (see data/secret.key or your .env); " +
	"refusing to start so that no history is orphaned")

// Store is the part of the store the key ring needs.
type Store interface {
	KeyVersions(ctx context.Context) ([]chat.KeyVersion, error)
	InsertKeyVersion(ctx context.Context, wrapped []byte, at time.Time) (int64, error)
	ReplaceWrappedKeys(ctx context.Context, versions []chat.KeyVersion) error
}

// placeholders are words of published example secrets ("your-secret-key-here",
// "change-me-in-production", …) that must never protect real data. A random
// key contains none of them.
var placeholders = []string{
	"change", "secret", "replace", "example", "placeholder", "insecure", "password", "default", "xxxxxxxx",
}

// published holds the SHA-256 of secrets that were printed in a README or
// an example file, so anyone may know them: a server started with one would
// sign tokens that anyone can forge. Only their hashes are kept here.
var published = map[[32]byte]string{
	// The example SECRET_KEY in the README of the Python project Mapsim
	// Chat grew from (MAPSIM-co/Mapsim_chat): 40 characters, which decode
	// to 29 bytes, so it would pass as a 40-character string.
	mustHex("3fd11819ca5f2f674396517e6361fb8dda03e436e37573f7005d09ed0cb52c6b"): "the example key in Mapsim Chat's original README",
}

func mustHex(s string) [32]byte {
	var h [32]byte
	if n, err := hex.Decode(h[:], []byte(s)); err != nil || n != 32 {
		panic("keyring: bad hash in the list of published secrets")
	}
	return h
}

// ParseSecret turns the configured SECRET_KEY into key material. It accepts
// base64 (standard or URL alphabet) or hex of at least 32 bytes, and any
// other string of at least 32 characters that is not a published placeholder
// or a secret printed somewhere public.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if where, ok := published[sha256.Sum256([]byte(s))]; ok {
		return nil, fmt.Errorf("it is %s, published for anyone to read; generate one with: openssl rand -base64 32", where)
	}
	for _, p := range placeholders {
		if strings.Contains(strings.ToLower(s), p) {
			return nil, fmt.Errorf("it looks like a placeholder (%q); generate one with: openssl rand -base64 32", p)
		}
	}
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.URLEncoding.DecodeString,
		base64.RawStdEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) >= SecretSize {
			return b, nil
		}
	}
	if len(s) >= 32 {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("it must be 32 random bytes in base64 (44 characters) or hex, or a random string of at least 32 characters; generate one with: openssl rand -base64 32")
}

// LoadOrCreateSecretFile reads the secret saved at path, or, when there is
// none, generates one and saves it with mode 0600. created reports which.
func LoadOrCreateSecretFile(path string) (secret []byte, created bool, err error) {
	text, err := os.ReadFile(path)
	if err == nil {
		secret, err := ParseSecret(string(text))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return secret, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	secret = make([]byte, SecretSize)
	rand.Read(secret)
	// Write the whole key to a temporary file (mode 0600), then link it into
	// place. The link fails if a secret appeared meanwhile, so two servers
	// starting at once agree on one key; and no starter can read a file that
	// another is still writing, as it could if path were created first.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	err = os.Link(tmp.Name(), path)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateSecretFile(path)
	}
	if err != nil {
		return nil, false, err
	}
	return secret, true, nil
}

// derive returns the 32-byte key for a label.
func derive(secret []byte, label string) []byte {
	key, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		panic(err) // only for lengths over 255*32, which we never ask for
	}
	return key
}

// SigningKey returns the key that signs access tokens.
func SigningKey(secret []byte) []byte { return derive(secret, labelSign) }

func wrappingAEAD(secret []byte) cipher.AEAD {
	aead, err := chacha20poly1305.NewX(derive(secret, labelWrap))
	if err != nil {
		panic(err)
	}
	return aead
}

// seal encrypts with a random 192-bit nonce and returns nonce||ciphertext.
// XChaCha20-Poly1305's long nonce makes random nonces safe for any number of
// messages under one key, which 96-bit GCM nonces are not.
func seal(aead cipher.AEAD, plaintext, aad []byte) []byte {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out, plaintext, aad)
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], aad)
}

// Ring holds every key version in memory and seals with the current one.
// Other nodes on the same database add versions of their own as they
// start: a version newer than any the ring holds is read from the store
// when first needed.
type Ring struct {
	mu      sync.RWMutex
	current int64
	keys    map[int64]cipher.AEAD
	newest  int64 // the highest version held

	st     Store
	wrap   cipher.AEAD
	loadMu sync.Mutex // one reload at a time
}

// Open unwraps every stored key version with secret, then makes, wraps and
// stores a new session key that becomes current. If any stored version fails
// to unwrap it returns ErrSecretMismatch and stores nothing.
func Open(ctx context.Context, st Store, secret []byte, now time.Time) (*Ring, error) {
	wrap := wrappingAEAD(secret)
	versions, err := st.KeyVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read key versions: %w", err)
	}
	r := &Ring{keys: make(map[int64]cipher.AEAD, len(versions)+1), st: st, wrap: wrap}
	if err := r.add(versions); err != nil {
		return nil, err
	}
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	id, err := st.InsertKeyVersion(ctx, seal(wrap, key, []byte(wrapAAD)), now)
	if err != nil {
		return nil, fmt.Errorf("store new key version: %w", err)
	}
	aead, _ := chacha20poly1305.NewX(key)
	r.keys[id] = aead
	r.current = id
	r.newest = max(r.newest, id)
	return r, nil
}

// Load unwraps every stored key version with secret, for a process that
// only reads what is stored (the export command): unlike Open it stores no
// new key version, and the ring it returns cannot seal. If any stored
// version fails to unwrap it returns ErrSecretMismatch.
func Load(ctx context.Context, st Store, secret []byte) (*Ring, error) {
	wrap := wrappingAEAD(secret)
	versions, err := st.KeyVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read key versions: %w", err)
	}
	r := &Ring{keys: make(map[int64]cipher.AEAD, len(versions))}
	for _, kv := range versions {
		key, err := open(wrap, kv.WrappedKey, []byte(wrapAAD))
		if err != nil {
			return nil, fmt.Errorf("%w (key version %d)", ErrSecretMismatch, kv.ID)
		}
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, fmt.Errorf("key version %d: %w", kv.ID, err)
		}
		r.keys[kv.ID] = aead
		r.newest = max(r.newest, kv.ID)
	}
	return r, nil
}

// add unwraps the versions the ring does not hold yet.
func (r *Ring) add(versions []chat.KeyVersion) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, kv := range versions {
		if _, ok := r.keys[kv.ID]; ok {
			continue
		}
		key, err := open(r.wrap, kv.WrappedKey, []byte(wrapAAD))
		if err != nil {
			return fmt.Errorf("%w (key version %d)", ErrSecretMismatch, kv.ID)
		}
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return fmt.Errorf("key version %d: %w", kv.ID, err)
		}
		r.keys[kv.ID] = aead
		r.newest = max(r.newest, kv.ID)
	}
	return nil
}

// aead returns a version's cipher, reading the store once for a version
// newer than any held (another node's, made after this one started). An
// older unknown version is not looked for: versions are never removed.
func (r *Ring) aead(version int64) (cipher.AEAD, bool) {
	r.mu.RLock()
	aead, ok := r.keys[version]
	newer := version > r.newest
	r.mu.RUnlock()
	if ok || !newer || r.st == nil {
		return aead, ok
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	r.mu.RLock()
	aead, ok = r.keys[version]
	newer = version > r.newest
	r.mu.RUnlock()
	if ok || !newer {
		return aead, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	versions, err := r.st.KeyVersions(ctx)
	if err != nil || r.add(versions) != nil {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	aead, ok = r.keys[version]
	return aead, ok
}

// Current returns the version new data is sealed with.
func (r *Ring) Current() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// Len returns how many key versions the ring holds.
func (r *Ring) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

// Seal encrypts plaintext with the current key, binding aad, and returns the
// version used and nonce||ciphertext.
func (r *Ring) Seal(plaintext, aad []byte) (int64, []byte) {
	r.mu.RLock()
	version, aead := r.current, r.keys[r.current]
	r.mu.RUnlock()
	if aead == nil {
		panic("keyring: Seal on a ring from Load, which only opens")
	}
	return version, seal(aead, plaintext, aad)
}

// Open decrypts what Seal returned. It fails when the version is unknown,
// the ciphertext was changed, or aad differs from the one it was sealed with.
func (r *Ring) Open(version int64, sealed, aad []byte) ([]byte, error) {
	aead, ok := r.aead(version)
	if !ok {
		return nil, fmt.Errorf("unknown key version %d", version)
	}
	return open(aead, sealed, aad)
}

// AEAD returns the cipher of a key version, for streaming encryption that
// seals many chunks under one version.
func (r *Ring) AEAD(version int64) (cipher.AEAD, bool) {
	return r.aead(version)
}

// Rewrap rewraps every stored key version from oldSecret to newSecret in one
// transaction. Nothing changes if any version fails to unwrap.
func Rewrap(ctx context.Context, st Store, oldSecret, newSecret []byte) (int, error) {
	oldWrap, newWrap := wrappingAEAD(oldSecret), wrappingAEAD(newSecret)
	versions, err := st.KeyVersions(ctx)
	if err != nil {
		return 0, err
	}
	for i, kv := range versions {
		key, err := open(oldWrap, kv.WrappedKey, []byte(wrapAAD))
		if err != nil {
			return 0, fmt.Errorf("%w (key version %d)", ErrSecretMismatch, kv.ID)
		}
		versions[i].WrappedKey = seal(newWrap, key, []byte(wrapAAD))
	}
	if err := st.ReplaceWrappedKeys(ctx, versions); err != nil {
		return 0, err
	}
	return len(versions), nil
}

// MessageAAD is the additional data a message body is sealed with: it binds
// the body to its row (the chat, the sender, the kind and the client id), so
// a body copied to another row does not open.
func MessageAAD(chatID, userID int64, kind, clientID string) []byte {
	aad := make([]byte, 0, 32+len(kind)+len(clientID))
	aad = append(aad, labelMessage...)
	aad = binary.BigEndian.AppendUint64(aad, uint64(chatID))
	aad = binary.BigEndian.AppendUint64(aad, uint64(userID))
	aad = append(aad, kind...)
	aad = append(aad, 0)
	return append(aad, clientID...)
}

// SealMessage seals plaintext as the body of the row m describes, filling
// in m.KeyVersion and m.Body. It is a chat.Sealer.
func (r *Ring) SealMessage(m *chat.NewMessage, plaintext []byte) {
	m.KeyVersion, m.Body = r.Seal(plaintext, MessageAAD(m.ChatID, m.UserID, m.Kind, m.ClientID))
}

// OpenMessage opens the body of a stored message.
func (r *Ring) OpenMessage(m *chat.Message) ([]byte, error) {
	return r.Open(m.KeyVersion, m.Body, MessageAAD(m.ChatID, m.UserID, m.Kind, m.ClientID))
}
