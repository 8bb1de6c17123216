package chat

import "time"

// End-to-end encryption: what the server keeps of E2EE.md's keys, epochs,
// envelopes and backups. The server never holds a private key or a room
// key; public keys are stored as published, and everything else (an
// envelope, a backup) is an opaque blob it seals at rest.

// E2EE error codes, beside the general ones: E2EE.md "The API" names them.
const (
	EIdentityExists    = "identity_exists"
	EBadCertificate    = "bad_certificate"
	EEpochConflict     = "epoch_conflict"
	EEnvelopesMismatch = "envelopes_mismatch"
	ENoEnvelope        = "no_envelope"
	ENoBackup          = "no_backup"
	EE2EERequired      = "e2ee_required"
	EStaleEpoch        = "stale_epoch"
)

// E2EE limits (E2EE.md "The API").
const (
	// MaxDevicesPerUser is the most live devices a user may have.
	MaxDevicesPerUser = 20
	// MaxEnvelopesPerEpoch is the most envelopes one epoch may carry.
	MaxEnvelopesPerEpoch = 1000
	// MaxBackupItemsAtOnce is the most backup items one call may add.
	MaxBackupItemsAtOnce = 500
	// MaxDeviceNameChars is the longest device name, in characters.
	MaxDeviceNameChars = 64
)

// Epoch staleness (E2EE.md "Epochs and room-key envelopes").
const (
	// EpochMaxMessages is how many messages an epoch carries before it is
	// stale.
	EpochMaxMessages = 100
	// EpochMaxAge is how long an epoch lasts before it is stale.
	EpochMaxAge = 7 * 24 * time.Hour
)

// PublicKey is a published public key: its algorithm and raw bytes.
type PublicKey struct {
	Alg string
	Pub []byte
}

// Device is one of a user's devices as published.
type Device struct {
	UserID    int64
	ID        string // b64u of 16 random bytes
	Name      string
	DH, Sig   PublicKey
	Cert      []byte
	CreatedAt time.Time
	RevokedAt time.Time // zero while live
}

// Keys is a user's published keys: the identity key (Alg "" when none)
// and devices.
type Keys struct {
	UserID   int64
	Username string
	Identity PublicKey
	Devices  []Device
}

// EpochState is an encrypted chat's epoch state as the store keeps it.
type EpochState struct {
	Current int64 // 0 before the first epoch
	Min     int64
	// Changed is set when a member joined, left or was removed, or a
	// member's device was added or revoked, since Current began.
	Changed bool
	// StartedAt and Messages are the current epoch's.
	StartedAt time.Time
	Messages  int64
}

// Stale reports whether the current epoch may no longer carry messages at
// now: something changed, it carried EpochMaxMessages, or it is
// EpochMaxAge old. Before the first epoch there is nothing to be stale.
func (e EpochState) Stale(now time.Time) bool {
	if e.Current == 0 {
		return false
	}
	return e.Changed || e.Messages >= EpochMaxMessages || !now.Before(e.StartedAt.Add(EpochMaxAge))
}

// Epoch is one epoch of a chat: who started it and when.
type Epoch struct {
	ChatID       int64
	Epoch        int64
	SenderID     int64
	SenderName   string
	SenderDevice string
	StartedAt    time.Time
}

// SealedEnvelope is one room-key envelope as stored: for one recipient
// device, its body sealed by the key ring.
type SealedEnvelope struct {
	RecipientID     int64
	RecipientDevice string
	KeyVersion      int64
	Body            []byte
}

// SealedBlob is an opaque blob sealed by the key ring: a backup header or
// a backup item.
type SealedBlob struct {
	KeyVersion int64
	Body       []byte
}

// BackupItem is one room key in a user's backup, sealed.
type BackupItem struct {
	ID       int64
	ChatName string
	Epoch    int64
	SealedBlob
}

// MessageUse is what the store checks before a message of an encrypted
// chat may use an epoch: the sender, their device and the epoch named in
// its mse1 text.
type MessageUse struct {
	ChatID   int64
	UserID   int64
	DeviceID string
	Epoch    int64
	At       time.Time
}

// IdentityOutcome says what publishing an identity key did.
type IdentityOutcome int

// Publishing an identity key's outcomes.
const (
	IdentityCreated  IdentityOutcome = iota // there was none
	IdentitySame                            // the same key again: nothing changed
	IdentityReplaced                        // a different key replaced the old one
)
