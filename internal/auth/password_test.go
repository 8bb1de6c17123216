package auth_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"golang.org/x/crypto/argon2"
)

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		password string
		username string
		ok       bool
	}{
		{"long passphrase", "correct horse battery staple", "alice", true},
		{"random", "Tq7#vLp2!zR9", "alice", true},
		{"exactly 8", "Xk3#pq7Z", "alice", true},
		{"exactly 256", strings.Repeat("Xk3#pq7Z", 32), "alice", true},
		{"8 characters of 2 bytes each", "ünïcödé!", "alice", true},
		{"no username to compare", "Tq7#vLp2!zR9", "", true},

		{"empty", "", "alice", false},
		{"7 characters", "Xk3#pq7", "alice", false},
		{"257 characters", strings.Repeat("Xk3#pq7Z", 32) + "!", "alice", false},
		{"7 characters in 14 bytes", "ünïcödé", "alice", false},
		{"invalid utf-8", "Xk3#pq7Z\xff", "alice", false},

		{"common", "password", "alice", false},
		{"common in capitals", "PASSWORD", "alice", false},
		{"common mixed case", "IloveYou", "alice", false},
		{"common with symbols", "P@ssw0rd!", "alice", false},
		{"common digits", "12345678", "alice", false},
		{"common with a year and a bang", "password2024!", "alice", false},
		{"common with digits", "Password123", "alice", false},
		{"leetspeak with a year", "p@ssw0rd2024", "alice", false},
		{"common with many digits", "iloveyou0000000", "alice", false},

		{"one repeated character", "aaaaaaaaaaaa", "alice", false},
		{"repeated symbol", "!!!!!!!!", "alice", false},
		{"repeated pair", "abababab", "alice", false},
		{"repeated triple", "xyzxyzxyzxyz", "alice", false},
		{"repeated quad", "Ab1!Ab1!Ab1!", "alice", false},

		{"digit run", "23456789", "alice", false},
		{"reverse digit run", "98765432", "alice", false},
		{"alphabet run", "bcdefghijk", "alice", false},
		{"reverse alphabet", "zyxwvutsrq", "alice", false},
		{"keyboard row", "wertyuio", "alice", false},
		{"keyboard row in capitals", "ASDFGHJKL", "alice", false},
		{"keyboard columns from w", "wsxedcrfvtgb", "alice", false},
		{"keyboard columns", "qazwsxedcrfv", "alice", false},

		{"contains the username", "alice-Tq7#vLp2", "alice", false},
		{"contains the username in capitals", "Tq7#ALICEvLp2", "alice", false},
		{"is the username", "alice_long_name", "alice_long_name", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.CheckPassword(tt.password, tt.username)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused %q: %v", tt.password, err)
				}
				return
			}
			if chat.ErrorCode(err) != chat.EInvalid {
				t.Fatalf("CheckPassword(%q) = %v, want an %s error", tt.password, err, chat.EInvalid)
			}
			if len(tt.password) >= 10 && strings.Contains(err.Error(), tt.password) {
				t.Fatalf("the error repeats the password: %v", err)
			}
		})
	}
}

// phc formats an argon2id hash the way HashPassword does, with chosen parts.
func phc(version string, params string, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return "$argon2id$" + version + "$" + params + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
}

func TestHashAndVerifyPassword(t *testing.T) {
	t.Parallel()
	const password = "correct horse battery staple"
	hash := auth.HashPassword(password)
	if !strings.HasPrefix(hash, "$argon2id$v=19$") {
		t.Fatalf("hash %q is not an argon2id PHC string", hash)
	}
	if strings.Contains(hash, password) {
		t.Fatal("the hash contains the password")
	}

	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"right", password, true},
		{"wrong", "correct horse battery stapler", false},
		{"case differs", "Correct horse battery staple", false},
		{"trailing space", password + " ", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword(hash, tt.password)
			if err != nil || ok != tt.want {
				t.Fatalf("VerifyPassword = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}

	t.Run("salted", func(t *testing.T) {
		if auth.HashPassword(password) == hash {
			t.Fatal("two hashes of one password are equal: no salt")
		}
	})
	t.Run("parameters come from the hash", func(t *testing.T) {
		// A hash made with other (older, cheaper) parameters still verifies.
		salt := []byte("0123456789abcdef")
		key := argon2.IDKey([]byte(password), salt, 1, 8*1024, 1, 32)
		old := phc("v=19", "m=8192,t=1,p=1", salt, key)
		if ok, err := auth.VerifyPassword(old, password); err != nil || !ok {
			t.Fatalf("VerifyPassword(older parameters) = %v, %v", ok, err)
		}
		if ok, err := auth.VerifyPassword(old, "wrong"); err != nil || ok {
			t.Fatalf("VerifyPassword(older parameters, wrong) = %v, %v", ok, err)
		}
	})
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	key := make([]byte, 32)
	b64 := base64.RawStdEncoding
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"plaintext", "correct horse battery staple"},
		{"bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)},
		{"missing part", "$argon2id$v=19$m=19456,t=2,p=1$" + b64.EncodeToString(salt)},
		{"extra part", phc("v=19", "m=19456,t=2,p=1", salt, key) + "$x"},
		{"old version", phc("v=16", "m=19456,t=2,p=1", salt, key)},
		{"no version", phc("19", "m=19456,t=2,p=1", salt, key)},
		{"zero memory", phc("v=19", "m=0,t=2,p=1", salt, key)},
		{"8 GiB of memory", phc("v=19", "m=8388608,t=2,p=1", salt, key)},
		{"zero passes", phc("v=19", "m=19456,t=0,p=1", salt, key)},
		{"a thousand passes", phc("v=19", "m=19456,t=1000,p=1", salt, key)},
		{"zero threads", phc("v=19", "m=19456,t=2,p=0", salt, key)},
		{"negative memory", phc("v=19", "m=-1,t=2,p=1", salt, key)},
		{"params garbled", phc("v=19", "memory=19456", salt, key)},
		{"salt not base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!$" + b64.EncodeToString(key)},
		{"key not base64", "$argon2id$v=19$m=19456,t=2,p=1$" + b64.EncodeToString(salt) + "$!!!"},
		{"key too short", phc("v=19", "m=19456,t=2,p=1", salt, key[:8])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword(tt.hash, "correct horse battery staple")
			if ok || err == nil {
				t.Fatalf("VerifyPassword(%q) = %v, %v; want false and an error", tt.hash, ok, err)
			}
		})
	}
}
