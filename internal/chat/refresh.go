package chat

import "time"

// RefreshOutcome is what trading a browser's refresh token did.
type RefreshOutcome int

const (
	// RefreshEnded: the token's session is revoked or expired, or its user
	// disabled; nothing changed.
	RefreshEnded RefreshOutcome = iota
	// RefreshRotated: the token is spent and its successor stored.
	RefreshRotated
	// RefreshGrace: the token was spent moments ago, within the grace,
	// and its successor is not spent yet (another tab of the same browser,
	// whose answer set the successor); no successor is stored.
	RefreshGrace
	// RefreshReplayed: the token was spent before the grace, or its
	// successor was spent too; its whole family (the session) is revoked.
	RefreshReplayed
)

// Refresh is one trade of a refresh token for its successor. The hashes
// are keyed hashes of the tokens, never the tokens.
type Refresh struct {
	TokenHash []byte
	NextHash  []byte
	At        time.Time
	// Grace is how long after its first trade a token still succeeds
	// (without a successor, and only while that successor is unspent)
	// rather than counting as a replay.
	Grace time.Duration
	// ExpiresAt is the session's new expiry after a rotation.
	ExpiresAt time.Time
}
