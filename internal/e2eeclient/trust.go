package e2eeclient

import (
	"fmt"
	"strings"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// Trust is what the client makes of the identity key the server gives for
// a user.
type Trust int

const (
	// TrustFirstUse: the first key seen for the user, pinned now.
	TrustFirstUse Trust = iota
	// TrustPinned: the pinned key, not verified.
	TrustPinned
	// TrustVerified: the pinned key, and its owner compared safety
	// numbers.
	TrustVerified
	// TrustChanged: a key different from the pinned one. Nothing signed
	// under it is trusted, and sending to chats with the user waits until
	// the change is accepted.
	TrustChanged
)

func (t Trust) String() string {
	return [...]string{"first use", "pinned", "verified", "changed"}[t]
}

// CheckIdentity compares the identity key the server gives for username
// with the pinned one: the first key seen is pinned (trust on first use);
// a different one is recorded as a change, and TrustChanged is what it
// stays until Accept. It reports whether the state changed (and should be
// saved).
func (s *State) CheckIdentity(username string, key e2ee.PublicKey) (Trust, bool) {
	user := strings.ToLower(username)
	p := s.Pins[user]
	switch {
	case p == nil:
		s.Pins[user] = &Pin{Key: key}
		return TrustFirstUse, true
	case p.Key.Equal(key):
		if p.Changed != nil { // the server went back to the pinned key
			p.Changed = nil
			return s.trustOf(p), true
		}
		return s.trustOf(p), false
	case p.Changed != nil && p.Changed.Equal(key):
		return TrustChanged, false
	default:
		k := key
		p.Changed = &k
		return TrustChanged, true
	}
}

func (s *State) trustOf(p *Pin) Trust {
	if p.Verified {
		return TrustVerified
	}
	return TrustPinned
}

// TrustOf returns the trust of username's pinned key, and false when none
// is pinned.
func (s *State) TrustOf(username string) (Trust, bool) {
	p := s.Pins[strings.ToLower(username)]
	if p == nil {
		return 0, false
	}
	if p.Changed != nil {
		return TrustChanged, true
	}
	return s.trustOf(p), true
}

// PinnedKey returns the identity key trusted for username: only devices
// it certified are accepted.
func (s *State) PinnedKey(username string) (e2ee.PublicKey, bool) {
	p := s.Pins[strings.ToLower(username)]
	if p == nil {
		return e2ee.PublicKey{}, false
	}
	return p.Key, true
}

// Accept trusts the changed identity key of username in place of the
// pinned one; the verified mark goes, since nobody compared the new key.
func (s *State) Accept(username string) error {
	p := s.Pins[strings.ToLower(username)]
	if p == nil || p.Changed == nil {
		return fmt.Errorf("%s's identity key has not changed; there is nothing to accept", username)
	}
	p.Key, p.Changed, p.Verified = *p.Changed, nil, false
	return nil
}

// MarkVerified records that the user compared safety numbers with
// username and they matched. A changed key must be accepted first.
func (s *State) MarkVerified(username string) error {
	p := s.Pins[strings.ToLower(username)]
	if p == nil {
		return fmt.Errorf("no identity key of %s is known yet", username)
	}
	if p.Changed != nil {
		return fmt.Errorf("%s's identity key has changed; /accept %s first, then compare the new safety number", username, username)
	}
	p.Verified = true
	return nil
}

// SafetyNumber returns the safety number of this account (me) and
// username's pinned identity key.
func (s *State) SafetyNumber(me, username string) (string, error) {
	p := s.Pins[strings.ToLower(username)]
	if p == nil {
		return "", fmt.Errorf("no identity key of %s is known yet", username)
	}
	key := p.Key
	if p.Changed != nil {
		key = *p.Changed
	}
	return e2ee.SafetyNumber(me, s.Identity.Public(), username, key)
}
