package wire

import (
	"encoding/base64"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// The shapes of end-to-end encryption's API (E2EE.md "The API"). Binary
// fields are base64url without padding.

// Frame types of end-to-end encryption, server to client.
const (
	// TypeEpoch tells a chat's members that an epoch started.
	TypeEpoch = "epoch"
	// TypeKeys tells everyone sharing an encrypted chat with a user that
	// the user's identity key or devices changed.
	TypeKeys = "keys"
)

// b64u is base64url without padding.
func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// PublicKey is {"alg", "pub"}.
type PublicKey struct {
	Alg string `json:"alg"`
	Pub string `json:"pub"`
}

// FromPublicKey converts a key; nil for none (an empty algorithm).
func FromPublicKey(k chat.PublicKey) *PublicKey {
	if k.Alg == "" {
		return nil
	}
	return &PublicKey{Alg: k.Alg, Pub: b64u(k.Pub)}
}

// Device is a published device.
type Device struct {
	DeviceID  string    `json:"device_id"`
	Name      string    `json:"name"`
	DH        PublicKey `json:"dh"`
	Sig       PublicKey `json:"sig"`
	Cert      string    `json:"cert"`
	CreatedAt string    `json:"created_at"`
	RevokedAt *string   `json:"revoked_at,omitempty"`
}

// FromDevice converts a device.
func FromDevice(d chat.Device) Device {
	out := Device{
		DeviceID: d.ID, Name: d.Name, DH: *FromPublicKey(d.DH), Sig: *FromPublicKey(d.Sig),
		Cert: b64u(d.Cert), CreatedAt: Timestamp(d.CreatedAt),
	}
	if !d.RevokedAt.IsZero() {
		t := Timestamp(d.RevokedAt)
		out.RevokedAt = &t
	}
	return out
}

// UserKeys is a user's identity key (null when none) and devices.
type UserKeys struct {
	Username string     `json:"username"`
	Identity *PublicKey `json:"identity"`
	Devices  []Device   `json:"devices"`
}

// FromKeys converts a user's keys.
func FromKeys(k chat.Keys) UserKeys {
	out := UserKeys{Username: k.Username, Identity: FromPublicKey(k.Identity), Devices: make([]Device, len(k.Devices))}
	for i, d := range k.Devices {
		out.Devices[i] = FromDevice(d)
	}
	return out
}

// ChatDevices answers GET /chats/{chat}/devices.
type ChatDevices struct {
	Chat    string     `json:"chat"`
	Members []UserKeys `json:"members"`
}

// Epoch is an encrypted chat's epoch state.
type Epoch struct {
	Current int64 `json:"current"`
	Min     int64 `json:"min"`
	Stale   bool  `json:"stale"`
}

// EpochStarted answers POST /chats/{chat}/epochs.
type EpochStarted struct {
	Epoch int64 `json:"epoch"`
}

// EpochConflict answers an epoch another member started first.
type EpochConflict struct {
	Detail  string `json:"detail"`
	Code    string `json:"code"`
	Current int64  `json:"current"`
}

// EpochFrame tells members that an epoch started.
type EpochFrame struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
	Epoch    int64  `json:"epoch"`
}

// KeysFrame tells that a user's keys changed.
type KeysFrame struct {
	Type     string `json:"type"`
	Username string `json:"username"`
}

// BackupItem is one room key of a key backup as listed.
type BackupItem struct {
	ID    int64  `json:"id"`
	Chat  string `json:"chat"`
	Epoch int64  `json:"epoch"`
	IV    string `json:"iv"`
	CT    string `json:"ct"`
}

// BackupItems answers GET /keys/backup/room-keys.
type BackupItems struct {
	Items   []BackupItem `json:"items"`
	HasMore bool         `json:"has_more"`
}

// Stored answers a call that stored some items.
type Stored struct {
	Stored int `json:"stored"`
}
