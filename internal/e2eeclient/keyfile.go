package e2eeclient

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// labelKeyFile binds a key file to its server and account (E2EE.md, "The
// terminal client").
const labelKeyFile = "mapsim-e2ee/v1/key-file"

// keyFileVersion is the version of the key file's outer JSON.
const keyFileVersion = 1

// ErrNoKeyFile means there is no key file at the path: the keys are new on
// this machine, or must be restored from the backup.
var ErrNoKeyFile = errors.New("e2eeclient: no key file")

// ErrWrongPassphrase means the key file or the backup does not open with
// the passphrase given. It wraps e2ee.ErrWrongPassphrase.
var ErrWrongPassphrase = fmt.Errorf("the recovery passphrase is wrong: %w", e2ee.ErrWrongPassphrase)

// DefaultKeyPath is where the keys of username on server live:
// <config dir>/mapsim-chat/keys/<server>/<username>.json, with the
// server's scheme, host and port in a folder name ("https_chat.example.org_443"
// for https://chat.example.org) and the username lower-cased.
func DefaultKeyPath(server, username string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("e2eeclient: no configuration folder for the key file (%w); give one with -keys", err)
	}
	return filepath.Join(dir, "mapsim-chat", "keys", serverFolder(server), strings.ToLower(username)+".json"), nil
}

// serverFolder turns a server address into a folder name that holds no
// path separator: scheme, host and port joined by "_".
func serverFolder(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return strings.Map(safeRune, server)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.Map(safeRune, u.Scheme+"_"+u.Hostname()+"_"+port)
}

func safeRune(r rune) rune {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		return r
	}
	return '_'
}

// keyFileJSON is the key file as it is on disk: everything but the key
// derivation is inside ct.
type keyFileJSON struct {
	V        int            `json:"v"`
	Server   string         `json:"server"`
	Username string         `json:"username"`
	KDF      e2ee.BackupKDF `json:"kdf"`
	IV       string         `json:"iv"`
	CT       string         `json:"ct"`
}

// keyFileAAD is T("mapsim-e2ee/v1/key-file", server, username), the
// username lower-cased: a key file copied to another account or server
// does not open.
func keyFileAAD(server, username string) []byte {
	return e2ee.Transcript(labelKeyFile, []byte(server), []byte(strings.ToLower(username)))
}

// KeyFile is an open key file: where it lives, whose it is, and the key
// that seals it, derived once from the passphrase.
type KeyFile struct {
	Path     string
	Server   string
	Username string
	kdf      e2ee.BackupKDF
	key      [e2ee.KeySize]byte
}

// NewKeyFile returns a key file sealed under key, derived from the
// passphrase with kdf (the backup's, so that one derivation gives both).
// Nothing is written until Save.
func NewKeyFile(path, server, username string, kdf e2ee.BackupKDF, key [e2ee.KeySize]byte) *KeyFile {
	return &KeyFile{Path: path, Server: server, Username: username, kdf: kdf, key: key}
}

// OpenKeyFile reads and decrypts the key file at path with the passphrase.
// A missing file is ErrNoKeyFile; one that does not open is
// ErrWrongPassphrase; one for another server or account says so.
func OpenKeyFile(path, server, username, passphrase string) (*KeyFile, *State, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoKeyFile
	}
	if err != nil {
		return nil, nil, fmt.Errorf("e2eeclient: read the key file: %w", err)
	}
	var f keyFileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s is not a key file: %w", path, err)
	}
	if f.V != keyFileVersion {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s has version %d; this client reads version %d", path, f.V, keyFileVersion)
	}
	if f.Server != server || !strings.EqualFold(f.Username, username) {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s holds the keys of %s on %s, not of %s on %s", path, f.Username, f.Server, username, server)
	}
	key, err := f.KDF.Key(passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s: %w", path, err)
	}
	iv, err1 := e2ee.DecodeB64U(f.IV)
	ct, err2 := e2ee.DecodeB64U(f.CT)
	if err1 != nil || err2 != nil || len(iv) != e2ee.IVSize {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s is damaged", path)
	}
	plain, err := gcm(key).Open(nil, iv, ct, keyFileAAD(server, username))
	if err != nil {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s does not open: %w", path, ErrWrongPassphrase)
	}
	st, err := decodeState(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("e2eeclient: the key file %s: %w", path, err)
	}
	return &KeyFile{Path: path, Server: server, Username: f.Username, kdf: f.KDF, key: key}, st, nil
}

// BackupKey is the key the file is sealed with, which is also the backup
// key: both come from the passphrase and the backup's key derivation.
func (k *KeyFile) BackupKey() [e2ee.KeySize]byte { return k.key }

// Save encrypts st and writes it to the key file with mode 0600 (its
// folder 0700), through a temporary file and a rename, so that a crash
// leaves the old file or the new one, never half of one.
func (k *KeyFile) Save(st *State) error {
	plain, err := st.encode()
	if err != nil {
		return err
	}
	iv := make([]byte, e2ee.IVSize)
	rand.Read(iv)
	ct := gcm(k.key).Seal(nil, iv, plain, keyFileAAD(k.Server, k.Username))
	out, err := json.MarshalIndent(keyFileJSON{
		V: keyFileVersion, Server: k.Server, Username: k.Username, KDF: k.kdf,
		IV: e2ee.EncodeB64U(iv), CT: e2ee.EncodeB64U(ct),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("e2eeclient: encode the key file: %w", err)
	}
	dir := filepath.Dir(k.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("e2eeclient: make the key file's folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".keys-*.tmp")
	if err != nil {
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), k.Path); err != nil {
		return fmt.Errorf("e2eeclient: write the key file: %w", err)
	}
	return nil
}

func gcm(key [e2ee.KeySize]byte) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

// readable reports whether a regular file is at path.
func readable(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", path)
	}
	return fi, nil
}
