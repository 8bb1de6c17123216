package e2ee

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// SafetyNumberGroups is the number of five-digit groups in a safety number.
const SafetyNumberGroups = 12

// Fingerprint returns SHA-256(T("mapsim-e2ee/v1/safety", username, alg,
// pub)) of a user's identity key, username lower-cased.
func Fingerprint(username string, identity PublicKey) ([sha256.Size]byte, error) {
	user, err := usernameField(username)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	if err := identity.CheckSigning(); err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("identity key: %w", err)
	}
	return sha256.Sum256(Transcript(labelSafety, user, []byte(identity.Alg), identity.Pub)), nil
}

// SafetyNumber returns the safety number of two users: 60 digits in twelve
// groups of five, separated by single spaces, the same whichever user is
// given first. The users are ordered by lower-cased username (byte order);
// two equal usernames, which only a user comparing keys with themselves
// would give, are ordered by fingerprint.
func SafetyNumber(usernameA string, identityA PublicKey, usernameB string, identityB PublicKey) (string, error) {
	fa, err := Fingerprint(usernameA, identityA)
	if err != nil {
		return "", err
	}
	fb, err := Fingerprint(usernameB, identityB)
	if err != nil {
		return "", err
	}
	ua, _ := usernameField(usernameA)
	ub, _ := usernameField(usernameB)
	if c := bytes.Compare(ua, ub); c > 0 || c == 0 && bytes.Compare(fa[:], fb[:]) > 0 {
		fa, fb = fb, fa
	}
	digest := sha512.Sum512(Transcript(labelSafetyNumber, fa[:], fb[:]))
	var b strings.Builder
	for i := range SafetyNumberGroups {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint32(digest[4*i:])%100000)
	}
	return b.String(), nil
}
