// Package e2eeclient is the client side of Mapsim Chat's end-to-end
// encryption (E2EE.md) for Go programs: the terminal client and tests. It
// keeps an account's keys in a key file sealed under the recovery
// passphrase, makes and publishes the identity and a device, keeps the key
// backup, restores from it, pins the identity keys of other users (trust
// on first use, with a loud state for a changed key), starts and opens
// room-key epochs, and encrypts and opens messages, refusing replays.
//
// The cryptography is internal/e2ee's; this package holds the state and
// speaks the API.
package e2eeclient

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// State is everything the key file holds: the account's private keys, the
// room keys it has, the identity keys it pinned, and the messages it
// accepted (for replay checks).
type State struct {
	// Identity is the account's identity key.
	Identity *e2ee.SigningKey
	// Device is this client's device.
	Device *e2ee.DeviceKeys
	// RoomKeys holds the room keys by chat name and epoch.
	RoomKeys map[string]map[uint32]RoomKey
	// Pins holds the identity key trusted for each user, by lower-cased
	// username.
	Pins map[string]*Pin
	// Seen holds, per chat, the messages accepted, for replay checks.
	Seen map[string]map[string]Seen
}

// RoomKey is one epoch's room key and what the client knew when it got it.
type RoomKey struct {
	Key [e2ee.KeySize]byte
	// Devices are the member devices ("username/device_id") the epoch was
	// made for, as this client saw them when it got the key; empty for a
	// key restored from the backup. A different set later makes the epoch
	// stale for sending.
	Devices []string
	// Got is when the client got the key.
	Got time.Time
}

// Pin is the identity key trusted for a user, and whether its owner
// compared safety numbers.
type Pin struct {
	Key      e2ee.PublicKey
	Verified bool
	// Changed is a different identity key the server now gives for the
	// user, not yet accepted: sending to chats with them waits for it.
	Changed *e2ee.PublicKey
}

// Seen is a message accepted from a (device, client id) pair, at an edit
// revision.
type Seen struct {
	MessageID int64
	Rev       int
}

// NewState returns a state for freshly made keys.
func NewState(identity *e2ee.SigningKey, device *e2ee.DeviceKeys) *State {
	return &State{
		Identity: identity, Device: device,
		RoomKeys: map[string]map[uint32]RoomKey{}, Pins: map[string]*Pin{}, Seen: map[string]map[string]Seen{},
	}
}

// RoomKey returns chat's room key of an epoch.
func (s *State) RoomKey(chat string, epoch uint32) (RoomKey, bool) {
	k, ok := s.RoomKeys[chat][epoch]
	return k, ok
}

// SetRoomKey records chat's room key of an epoch.
func (s *State) SetRoomKey(chat string, epoch uint32, k RoomKey) {
	if s.RoomKeys[chat] == nil {
		s.RoomKeys[chat] = map[uint32]RoomKey{}
	}
	s.RoomKeys[chat][epoch] = k
}

// The JSON of the state, inside the key file. Private keys are PKCS#8.
type stateJSON struct {
	Identity string `json:"identity"`
	Device   struct {
		ID  string `json:"device_id"`
		DH  string `json:"dh"`
		Sig string `json:"sig"`
	} `json:"device"`
	RoomKeys []roomKeyJSON      `json:"room_keys"`
	Pins     []pinJSON          `json:"pins"`
	Seen     map[string][]seenJ `json:"seen"`
}

type roomKeyJSON struct {
	Chat    string    `json:"chat"`
	Epoch   uint32    `json:"epoch"`
	Key     string    `json:"key"`
	Devices []string  `json:"devices,omitempty"`
	Got     time.Time `json:"got"`
}

type pinJSON struct {
	Username string          `json:"username"`
	Key      e2ee.PublicKey  `json:"key"`
	Verified bool            `json:"verified,omitempty"`
	Changed  *e2ee.PublicKey `json:"changed,omitempty"`
}

type seenJ struct {
	Key       string `json:"k"`
	MessageID int64  `json:"id"`
	Rev       int    `json:"rev,omitempty"`
}

func (s *State) encode() ([]byte, error) {
	var j stateJSON
	der, err := s.Identity.MarshalPKCS8()
	if err != nil {
		return nil, err
	}
	j.Identity = e2ee.EncodeB64U(der)
	j.Device.ID = s.Device.ID
	if der, err = s.Device.DH.MarshalPKCS8(); err != nil {
		return nil, err
	}
	j.Device.DH = e2ee.EncodeB64U(der)
	if der, err = s.Device.Sig.MarshalPKCS8(); err != nil {
		return nil, err
	}
	j.Device.Sig = e2ee.EncodeB64U(der)
	for chat, epochs := range s.RoomKeys {
		for epoch, k := range epochs {
			j.RoomKeys = append(j.RoomKeys, roomKeyJSON{Chat: chat, Epoch: epoch, Key: e2ee.EncodeB64U(k.Key[:]), Devices: k.Devices, Got: k.Got})
		}
	}
	sort.Slice(j.RoomKeys, func(a, b int) bool {
		if j.RoomKeys[a].Chat != j.RoomKeys[b].Chat {
			return j.RoomKeys[a].Chat < j.RoomKeys[b].Chat
		}
		return j.RoomKeys[a].Epoch < j.RoomKeys[b].Epoch
	})
	for user, p := range s.Pins {
		j.Pins = append(j.Pins, pinJSON{Username: user, Key: p.Key, Verified: p.Verified, Changed: p.Changed})
	}
	sort.Slice(j.Pins, func(a, b int) bool { return j.Pins[a].Username < j.Pins[b].Username })
	j.Seen = map[string][]seenJ{}
	for chat, seen := range s.Seen {
		for k, v := range seen {
			j.Seen[chat] = append(j.Seen[chat], seenJ{Key: k, MessageID: v.MessageID, Rev: v.Rev})
		}
	}
	return json.Marshal(j)
}

func decodeState(plain []byte) (*State, error) {
	var j stateJSON
	if err := json.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("the keys do not decode: %w", err)
	}
	pkcs8 := func(name, s string) ([]byte, error) {
		b, err := e2ee.DecodeB64U(s)
		if err != nil {
			return nil, fmt.Errorf("the %s key: %w", name, err)
		}
		return b, nil
	}
	der, err := pkcs8("identity", j.Identity)
	if err != nil {
		return nil, err
	}
	identity, err := e2ee.ParseSigningKey(der)
	if err != nil {
		return nil, fmt.Errorf("the identity key: %w", err)
	}
	if err := e2ee.CheckDeviceID(j.Device.ID); err != nil {
		return nil, fmt.Errorf("the device id: %w", err)
	}
	if der, err = pkcs8("device agreement", j.Device.DH); err != nil {
		return nil, err
	}
	dh, err := e2ee.ParseAgreementKey(der)
	if err != nil {
		return nil, fmt.Errorf("the device agreement key: %w", err)
	}
	if der, err = pkcs8("device signing", j.Device.Sig); err != nil {
		return nil, err
	}
	sig, err := e2ee.ParseSigningKey(der)
	if err != nil {
		return nil, fmt.Errorf("the device signing key: %w", err)
	}
	st := NewState(identity, &e2ee.DeviceKeys{ID: j.Device.ID, DH: dh, Sig: sig})
	for _, k := range j.RoomKeys {
		raw, err := e2ee.DecodeB64U(k.Key)
		if err != nil || len(raw) != e2ee.KeySize {
			return nil, fmt.Errorf("the room key of %s epoch %d is damaged", k.Chat, k.Epoch)
		}
		rk := RoomKey{Devices: k.Devices, Got: k.Got}
		copy(rk.Key[:], raw)
		st.SetRoomKey(k.Chat, k.Epoch, rk)
	}
	for _, p := range j.Pins {
		st.Pins[strings.ToLower(p.Username)] = &Pin{Key: p.Key, Verified: p.Verified, Changed: p.Changed}
	}
	for chat, seen := range j.Seen {
		m := make(map[string]Seen, len(seen))
		for _, v := range seen {
			m[v.Key] = Seen{MessageID: v.MessageID, Rev: v.Rev}
		}
		st.Seen[chat] = m
	}
	return st, nil
}
