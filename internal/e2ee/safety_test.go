package e2ee_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// refSafetyNumber is E2EE.md's safety number, step by step.
func refSafetyNumber(userA string, a e2ee.PublicKey, userB string, b e2ee.PublicKey) string {
	type side struct {
		user string
		fp   [32]byte
	}
	sa := side{strings.ToLower(userA), sha256.Sum256(refT("mapsim-e2ee/v1/safety", refUser(userA), []byte(a.Alg), a.Pub))}
	sb := side{strings.ToLower(userB), sha256.Sum256(refT("mapsim-e2ee/v1/safety", refUser(userB), []byte(b.Alg), b.Pub))}
	if sb.user < sa.user {
		sa, sb = sb, sa
	}
	digest := sha512.Sum512(refT("mapsim-e2ee/v1/safety-number", sa.fp[:], sb.fp[:]))
	groups := make([]string, 12)
	for i := range groups {
		n := uint32(digest[4*i])<<24 | uint32(digest[4*i+1])<<16 | uint32(digest[4*i+2])<<8 | uint32(digest[4*i+3])
		groups[i] = fmt.Sprintf("%05d", n%100000)
	}
	return strings.Join(groups, " ")
}

var safetyShape = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`)

func TestSafetyNumber(t *testing.T) {
	alice, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	bob, _ := e2ee.GenerateSigningKey(e2ee.AlgP256)
	newAlice, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)

	ab, err := e2ee.SafetyNumber("alice", alice.Public(), "bob", bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !safetyShape.MatchString(ab) {
		t.Fatalf("safety number %q", ab)
	}
	if want := refSafetyNumber("alice", alice.Public(), "bob", bob.Public()); ab != want {
		t.Fatalf("safety number %s, want %s", ab, want)
	}
	tests := []struct {
		name   string
		userA  string
		keyA   e2ee.PublicKey
		userB  string
		keyB   e2ee.PublicKey
		sameAs bool // as ab
	}{
		{"the other way round", "bob", bob.Public(), "alice", alice.Public(), true},
		{"names in other cases", "BOB", bob.Public(), "Alice", alice.Public(), true},
		{"a new key for alice", "alice", newAlice.Public(), "bob", bob.Public(), false},
		{"the keys swapped", "alice", bob.Public(), "bob", alice.Public(), false},
		{"another name", "alicia", alice.Public(), "bob", bob.Public(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e2ee.SafetyNumber(tt.userA, tt.keyA, tt.userB, tt.keyB)
			if err != nil {
				t.Fatal(err)
			}
			if (got == ab) != tt.sameAs {
				t.Fatalf("got %s, alice and bob's is %s", got, ab)
			}
			if want := refSafetyNumber(tt.userA, tt.keyA, tt.userB, tt.keyB); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
	// One user's two keys, as a user who checks a new key of their own:
	// the order is the fingerprints', so both sides still agree.
	x, _ := e2ee.SafetyNumber("alice", alice.Public(), "Alice", newAlice.Public())
	y, _ := e2ee.SafetyNumber("Alice", newAlice.Public(), "alice", alice.Public())
	if x != y || !safetyShape.MatchString(x) {
		t.Fatalf("%s and %s", x, y)
	}
	if _, err := e2ee.SafetyNumber("alice", e2ee.PublicKey{Alg: "x25519", Pub: alice.Public().Pub}, "bob", bob.Public()); err == nil {
		t.Fatal("a safety number of an agreement key")
	}
}
