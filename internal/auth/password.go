// Package auth holds accounts and access: password hashing (argon2id),
// password rules, access tokens (HS256 JWT bound to a session row), login
// throttling and single-use WebSocket tickets.
package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"golang.org/x/crypto/argon2"
)

// Argon2id parameters from OWASP's password storage guidance (19 MiB,
// two passes, one lane).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password length limits, in characters.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

//go:embed common-passwords.txt
var commonPasswordsText string

var commonPasswords = func() map[string]struct{} {
	set := make(map[string]struct{}, 512)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "# ") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
}()

// keyboardRuns are sequences whose substrings make weak passwords.
var keyboardRuns = []string{
	"01234567890", "09876543210", "abcdefghijklmnopqrstuvwxyz", "zyxwvutsrqponmlkjihgfedcba",
	"qwertyuiop", "poiuytrewq", "asdfghjkl", "lkjhgfdsa", "zxcvbnm", "mnbvcxz", "qazwsxedcrfvtgbyhnujmikolp",
}

// CheckPassword checks a new password against the length limits, the list of
// common passwords and the patterns they follow.
func CheckPassword(password, username string) error {
	n := utf8.RuneCountInString(password)
	if !utf8.ValidString(password) || n < MinPasswordLen || n > MaxPasswordLen {
		return chat.Errorf(chat.EInvalid, "A password is %d to %d characters.", MinPasswordLen, MaxPasswordLen)
	}
	lower := strings.ToLower(password)
	weak := func() error {
		return chat.Errorf(chat.EInvalid, "That password is too common or too easy to guess; choose a longer, less predictable one.")
	}
	if _, ok := commonPasswords[lower]; ok {
		return weak()
	}
	if username != "" && strings.Contains(lower, strings.ToLower(username)) {
		return chat.Errorf(chat.EInvalid, "A password must not contain the username.")
	}
	// One repeated character or a repeated short chunk ("abcabcabc").
	for size := 1; size <= 4; size++ {
		if len(lower)%size == 0 && strings.Repeat(lower[:size], len(lower)/size) == lower {
			return weak()
		}
	}
	for _, run := range keyboardRuns {
		if strings.Contains(run, lower) {
			return weak()
		}
	}
	// A common password with digits or symbols tacked on ("password2024!").
	stem := strings.TrimRightFunc(lower, func(r rune) bool { return !('a' <= r && r <= 'z') })
	if _, ok := commonPasswords[stem]; ok && stem != "" {
		return weak()
	}
	return nil
}

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errBadHash = errors.New("malformed password hash")

// VerifyPassword reports whether password matches a hash made by
// HashPassword (with whatever parameters the hash records).
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var memory, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &passes, &threads); err != nil ||
		memory == 0 || memory > 1<<22 || passes == 0 || passes > 64 || threads == 0 {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, passes, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified against when a login names no existing user, so that
// a wrong username costs the same time as a wrong password.
var dummyHash = HashPassword("mapsim-chat timing equaliser, never a real password")
