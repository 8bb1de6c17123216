package e2eeclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// Client-side staleness rules (E2EE.md, "Epochs and room-key envelopes"):
// the server enforces them, and the client checks them too.
const (
	// EpochMessages is how many messages an epoch carries at most.
	EpochMessages = 100
	// EpochAge is how long an epoch is used at most.
	EpochAge = 7 * 24 * time.Hour
)

// Reasons a message cannot be opened, as the terminal client shows them.
const (
	ReasonUnknownDevice   = "unknown device"
	ReasonMissingEpochKey = "missing epoch key"
	ReasonBadSignature    = "bad signature"
	ReasonAltered         = "altered"
	ReasonReplay          = "replay"
	ReasonMalformed       = "malformed"
	ReasonKeyChanged      = "identity key changed"
)

// DecryptError is why a message did not open: one of the Reason
// constants, and the error behind it.
type DecryptError struct {
	Reason string
	Err    error
}

func (e *DecryptError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *DecryptError) Unwrap() error { return e.Err }

func reasonOf(err error) string {
	switch {
	case errors.Is(err, e2ee.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, e2ee.ErrAltered):
		return ReasonAltered
	case errors.Is(err, e2ee.ErrWrongDevice):
		return ReasonUnknownDevice
	}
	return ReasonMalformed
}

// HeldError means sending to the chat waits until the user accepts the
// changed identity keys of Users.
type HeldError struct{ Users []string }

func (e *HeldError) Error() string {
	return fmt.Sprintf("sending is held: the identity key of %s changed; check it and type /accept %s", strings.Join(e.Users, ", "), e.Users[0])
}

// Content is what an encrypted message holds.
type Content struct {
	Text  string          `json:"text"`
	Rev   int             `json:"rev"`
	Reply json.RawMessage `json:"reply,omitempty"`
	File  json.RawMessage `json:"file,omitempty"`
}

// Message is a message of an encrypted chat as the server gives it: its
// id, sender, client id (the message's own, also for an edit) and mse1
// text.
type Message struct {
	ID       int64
	Username string
	ClientID string
	Text     string
	// Edit is true for an edit event: its rev must be higher than the one
	// shown.
	Edit bool
}

// TrustEvent is a change in what the client trusts, for the user to see.
type TrustEvent struct {
	Username string
	Trust    Trust
}

// Chat is an open encrypted chat: its members' trusted devices, its epoch
// state, and the room keys this device has for it. A Chat is used by one
// goroutine at a time.
type Chat struct {
	acct *Account
	// Name is the chat's name, "direct:3:7" or "group:…", which
	// transcripts bind.
	Name string
	// members by lower-cased username; others holds users met outside the
	// member list (former members, whose old messages stay readable).
	members map[string]*member
	others  map[string]*member
	epochs  EpochState
	// noEnvelope holds the epochs the server had no envelope of for this
	// device, so that each is asked for once until an epoch frame.
	noEnvelope map[uint32]bool
	// counted holds, per epoch, the messages seen on it.
	counted map[uint32]map[int64]bool
	// looked holds the users whose keys were looked up again for an
	// unknown device, so that it happens once per user and session.
	looked map[string]bool
}

type member struct {
	username string
	trust    Trust
	// devices are those certified by the pinned identity key.
	devices map[string]e2ee.Device
	// all is every device the server lists, certified or not: an epoch
	// must cover them, so a change the user did not accept holds sending.
	all int
}

// OpenChat opens an encrypted chat by name: it fetches its members' keys
// (pinning new identity keys) and its epoch state. The trust events say
// which keys were pinned for the first time or changed.
func (a *Account) OpenChat(ctx context.Context, name string) (*Chat, []TrustEvent, error) {
	c := &Chat{acct: a, Name: name, others: map[string]*member{}, noEnvelope: map[uint32]bool{}, counted: map[uint32]map[int64]bool{}, looked: map[string]bool{}}
	events, err := c.Refresh(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, events, nil
}

// Refresh fetches the members' keys and the epoch state again: after a
// membership change or a keys frame.
func (c *Chat) Refresh(ctx context.Context) ([]TrustEvent, error) {
	users, err := c.acct.API.ChatDevices(ctx, c.Name)
	if err != nil {
		return nil, fmt.Errorf("e2eeclient: the members' keys of %s: %w", c.Name, err)
	}
	members := map[string]*member{}
	var events []TrustEvent
	for _, u := range users {
		m, ev := c.trusted(u)
		if ev != nil {
			events = append(events, *ev)
		}
		members[strings.ToLower(u.Username)] = m
	}
	c.members = members
	if c.epochs, err = c.acct.API.Epochs(ctx, c.Name); err != nil {
		return nil, fmt.Errorf("e2eeclient: the epochs of %s: %w", c.Name, err)
	}
	return events, nil
}

// trusted checks a user's identity key against the pin and keeps the
// devices it certified.
func (c *Chat) trusted(u UserKeys) (*member, *TrustEvent) {
	m := &member{username: u.Username, devices: map[string]e2ee.Device{}, all: len(u.Devices)}
	if u.Identity == nil {
		m.trust = TrustPinned // no keys yet, so no devices to trust or hold
		return m, nil
	}
	var ev *TrustEvent
	if sameUser(u.Username, c.acct.Username) {
		if !u.Identity.Equal(c.acct.State.Identity.Public()) {
			m.trust = TrustChanged
			ev = &TrustEvent{Username: u.Username, Trust: TrustChanged}
		} else {
			m.trust = TrustVerified
		}
	} else {
		trust, changed := c.acct.State.CheckIdentity(u.Username, *u.Identity)
		m.trust = trust
		if changed {
			c.acct.dirty = true
			if trust == TrustFirstUse || trust == TrustChanged {
				ev = &TrustEvent{Username: u.Username, Trust: trust}
			}
		}
	}
	pinned := c.acct.State.Identity.Public()
	if !sameUser(u.Username, c.acct.Username) {
		pinned, _ = c.acct.State.PinnedKey(u.Username)
	}
	for _, d := range u.Devices {
		if d.RevokedAt != "" {
			continue
		}
		if e2ee.VerifyDevice(pinned, u.Username, d.Device) == nil {
			m.devices[d.ID] = d.Device
		}
	}
	return m, ev
}

// Held returns the members whose changed identity key the user has not
// accepted: sending waits for them.
func (c *Chat) Held() []string {
	var held []string
	for _, m := range c.members {
		if t, ok := c.acct.State.TrustOf(m.username); ok && t == TrustChanged && !sameUser(m.username, c.acct.Username) {
			held = append(held, m.username)
		}
	}
	sort.Strings(held)
	return held
}

// Members returns the usernames of the chat's members.
func (c *Chat) Members() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.username)
	}
	sort.Strings(out)
	return out
}

// Accept trusts username's changed identity key and fetches the keys
// again, so that their devices under the new key are accepted.
func (c *Chat) Accept(ctx context.Context, username string) error {
	if err := c.acct.State.Accept(username); err != nil {
		return err
	}
	c.acct.dirty = true
	if _, err := c.Refresh(ctx); err != nil {
		return err
	}
	return c.acct.Save()
}

// deviceSet is the chat's member devices as "username/device_id", sorted:
// what an epoch is made for.
func (c *Chat) deviceSet() []string {
	var set []string
	for _, m := range c.members {
		for id := range m.devices {
			set = append(set, strings.ToLower(m.username)+"/"+id)
		}
	}
	sort.Strings(set)
	return set
}

// senderDevice finds a device of username certified by their pinned key:
// among the members, and else (once per user and session) by looking the
// user's keys up again.
func (c *Chat) senderDevice(ctx context.Context, username, deviceID string) (e2ee.Device, error) {
	user := strings.ToLower(username)
	for _, set := range []map[string]*member{c.members, c.others} {
		if m := set[user]; m != nil {
			if d, ok := m.devices[deviceID]; ok {
				return d, nil
			}
		}
	}
	if !c.looked[user] {
		c.looked[user] = true
		if _, ok := c.members[user]; ok {
			c.Refresh(ctx) // a device added since the chat was opened
		} else if u, err := c.acct.API.UserKeys(ctx, username); err == nil {
			m, _ := c.trusted(u)
			c.others[user] = m
		}
		return c.senderDevice(ctx, username, deviceID)
	}
	if t, ok := c.acct.State.TrustOf(username); ok && t == TrustChanged {
		return e2ee.Device{}, &DecryptError{Reason: ReasonKeyChanged, Err: fmt.Errorf("%s's identity key changed; /accept %s to trust it", username, username)}
	}
	return e2ee.Device{}, &DecryptError{Reason: ReasonUnknownDevice, Err: fmt.Errorf("device %s is not a device of %s certified by their identity key", deviceID, username)}
}

// roomKey returns the room key of an epoch: kept, or fetched from this
// device's envelope (then kept and backed up).
func (c *Chat) roomKey(ctx context.Context, epoch uint32) (RoomKey, error) {
	if k, ok := c.acct.State.RoomKey(c.Name, epoch); ok {
		return k, nil
	}
	missing := func(err error) error {
		return &DecryptError{Reason: ReasonMissingEpochKey, Err: err}
	}
	if c.noEnvelope[epoch] {
		return RoomKey{}, missing(fmt.Errorf("this device has no envelope of epoch %d", epoch))
	}
	ans, err := c.acct.API.Envelope(ctx, c.Name, epoch, c.acct.State.Device.ID)
	if err != nil {
		if IsStatus(err, http.StatusNotFound) {
			c.noEnvelope[epoch] = true
		}
		return RoomKey{}, missing(err)
	}
	key, err := c.openEnvelope(ctx, epoch, ans)
	if err != nil {
		return RoomKey{}, missing(fmt.Errorf("the envelope of epoch %d: %w", epoch, err))
	}
	k := RoomKey{Key: key, Got: time.Now()}
	if epoch >= c.epochs.Current {
		k.Devices = c.deviceSet()
	}
	c.acct.addRoomKey(ctx, c.Name, epoch, k)
	return k, nil
}

// openEnvelope checks that an envelope comes from a trusted device of its
// sender and opens it with this device's key.
func (c *Chat) openEnvelope(ctx context.Context, epoch uint32, ans EnvelopeAnswer) ([e2ee.KeySize]byte, error) {
	sender, err := c.senderDevice(ctx, ans.Sender, ans.SenderDevice)
	if err != nil {
		return [e2ee.KeySize]byte{}, err
	}
	return e2ee.OpenEnvelope(c.acct.State.Device, c.acct.Username, c.Name, epoch, sender, ans.Sender, ans.Envelope)
}

// NoteEpoch records an epoch frame: the chat's current epoch moved.
func (c *Chat) NoteEpoch(epoch uint32) {
	delete(c.noEnvelope, epoch)
	if epoch > c.epochs.Current {
		c.epochs.Current, c.epochs.Stale = epoch, false
	}
}

// Decrypt checks and opens a message: the sender's device must be
// certified by their pinned identity key, the signature and the
// ciphertext must hold, and the (device, client id) pair must not have
// been accepted for another message (a replay), nor an edit carry a
// revision not higher than the one shown. Every refusal is a
// *DecryptError.
func (c *Chat) Decrypt(ctx context.Context, m Message) (Content, error) {
	sm, err := e2ee.ParseMessage(m.Text, len(m.Text))
	if err != nil {
		return Content{}, &DecryptError{Reason: ReasonMalformed, Err: err}
	}
	sender, err := c.senderDevice(ctx, m.Username, sm.DeviceID)
	if err != nil {
		return Content{}, err
	}
	k, err := c.roomKey(ctx, sm.Epoch)
	if err != nil {
		return Content{}, err
	}
	plain, err := e2ee.DecryptMessage(k.Key, sender, c.Name, m.Username, m.ClientID, m.Text)
	if err != nil {
		return Content{}, &DecryptError{Reason: reasonOf(err), Err: err}
	}
	content, err := parseContent(plain)
	if err != nil {
		return Content{}, &DecryptError{Reason: ReasonMalformed, Err: err}
	}
	if err := c.checkReplay(sm.DeviceID, m, content.Rev); err != nil {
		return Content{}, err
	}
	if c.counted[sm.Epoch] == nil {
		c.counted[sm.Epoch] = map[int64]bool{}
	}
	c.counted[sm.Epoch][m.ID] = true
	return content, nil
}

// checkReplay refuses a (device, client id) pair accepted before under
// another message id, an edit whose rev is not higher than the one seen,
// and an older version of a message; then records the pair.
func (c *Chat) checkReplay(deviceID string, m Message, rev int) error {
	seen := c.acct.State.Seen[c.Name]
	if seen == nil {
		seen = map[string]Seen{}
		c.acct.State.Seen[c.Name] = seen
	}
	key := deviceID + " " + m.ClientID
	was, ok := seen[key]
	switch {
	case ok && was.MessageID != m.ID:
		return &DecryptError{Reason: ReasonReplay, Err: fmt.Errorf("client id %s of device %s was already used by message %d", m.ClientID, deviceID, was.MessageID)}
	case ok && m.Edit && rev <= was.Rev:
		return &DecryptError{Reason: ReasonReplay, Err: fmt.Errorf("an edit of message %d at rev %d, not above the rev %d shown", m.ID, rev, was.Rev)}
	case ok && rev < was.Rev:
		return &DecryptError{Reason: ReasonReplay, Err: fmt.Errorf("an older version (rev %d) of message %d", rev, m.ID)}
	}
	if !ok || rev > was.Rev {
		seen[key] = Seen{MessageID: m.ID, Rev: rev}
		c.acct.dirty = true
	}
	return nil
}

func parseContent(plain []byte) (Content, error) {
	var body struct {
		V *int `json:"v"`
		Content
	}
	if err := json.Unmarshal(plain, &body); err != nil {
		return Content{}, fmt.Errorf("the plaintext is not JSON: %w", err)
	}
	if body.V == nil || *body.V != 1 {
		return Content{}, errors.New("the plaintext is not a version 1 message")
	}
	if body.Rev < 0 {
		return Content{}, errors.New("rev is negative")
	}
	return body.Content, nil
}

// Seal encrypts text as a message with clientID on the chat's current
// epoch, starting a new epoch first when there is none, it is stale, or
// this device lacks its key. Sending waits (*HeldError) while a member's
// changed identity key is not accepted.
func (c *Chat) Seal(ctx context.Context, clientID string, content Content) (string, error) {
	return c.seal(ctx, clientID, content, false)
}

// Reseal encrypts the message again on a new epoch: the server refused it
// with stale_epoch. The client id stays the same. The refusal may also mean
// that this device was revoked (elsewhere, or by the server): the device is
// checked first, and a revoked one replaced by a new device.
func (c *Chat) Reseal(ctx context.Context, clientID string, content Content) (string, error) {
	before := c.acct.State.Device.ID
	if err := c.acct.republish(ctx); err != nil {
		return "", err
	}
	if c.acct.State.Device.ID != before {
		c.acct.warn("this device was revoked on the server; a new device of this client replaces it")
		if _, err := c.Refresh(ctx); err != nil {
			return "", err
		}
	}
	return c.seal(ctx, clientID, content, true)
}

func (c *Chat) seal(ctx context.Context, clientID string, content Content, force bool) (string, error) {
	if held := c.Held(); len(held) > 0 {
		return "", &HeldError{Users: held}
	}
	epoch, key, err := c.sendingEpoch(ctx, force)
	if err != nil {
		return "", err
	}
	return c.sealMessage(epoch, key.Key, clientID, content)
}

// sealMessage encrypts content as an mse1 message on an epoch's key.
func (c *Chat) sealMessage(epoch uint32, key [e2ee.KeySize]byte, clientID string, content Content) (string, error) {
	body := map[string]any{"v": 1, "text": content.Text}
	if content.Rev > 0 {
		body["rev"] = content.Rev
	}
	if content.Reply != nil {
		body["reply"] = content.Reply
	}
	if content.File != nil {
		body["file"] = content.File
	}
	plain, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	return e2ee.EncryptMessage(key, c.acct.State.Device, c.Name, epoch, c.acct.Username, clientID, plain)
}

// sendingEpoch returns the epoch to send on and its key.
func (c *Chat) sendingEpoch(ctx context.Context, force bool) (uint32, RoomKey, error) {
	st, err := c.acct.API.Epochs(ctx, c.Name)
	if err != nil {
		return 0, RoomKey{}, fmt.Errorf("e2eeclient: the epochs of %s: %w", c.Name, err)
	}
	c.epochs = st
	if !force && st.Current > 0 && !st.Stale && st.Current >= st.Min {
		if k, err := c.roomKey(ctx, st.Current); err == nil && !c.locallyStale(st.Current, k) {
			return st.Current, k, nil
		}
	}
	return c.startNext(ctx, st.Current+1)
}

// startNext starts epoch next. Another member may start the same epoch at
// the same moment: the loser of the race takes the winner's epoch (409),
// or starts the one after it when that one is no use, a few times at most.
func (c *Chat) startNext(ctx context.Context, next uint32) (uint32, RoomKey, error) {
	for range 3 {
		epoch, k, err := c.startEpoch(ctx, next)
		var conflict *APIError
		if !errors.As(err, &conflict) || conflict.Status != http.StatusConflict {
			return epoch, k, err
		}
		theirs := conflict.Current
		if theirs == 0 {
			if st, err := c.acct.API.Epochs(ctx, c.Name); err == nil {
				theirs = st.Current
			}
		}
		c.NoteEpoch(theirs)
		if k, err := c.roomKey(ctx, theirs); err == nil && !c.locallyStale(theirs, k) {
			return theirs, k, nil
		}
		next = theirs + 1
	}
	return 0, RoomKey{}, fmt.Errorf("e2eeclient: could not start a new epoch of %s: other members kept starting theirs", c.Name)
}

// locallyStale applies the staleness rules the client can see for
// itself: the members' devices differ from those the epoch was made for,
// it carried EpochMessages messages, or it is older than EpochAge.
func (c *Chat) locallyStale(epoch uint32, k RoomKey) bool {
	if k.Devices != nil && !slices.Equal(k.Devices, c.deviceSet()) {
		return true
	}
	if len(c.counted[epoch]) >= EpochMessages {
		return true
	}
	return !k.Got.IsZero() && time.Since(k.Got) > EpochAge
}

// startEpoch makes a room key for epoch and an envelope of it for every
// trusted device of every member, this one included, and posts them. An
// envelopes_mismatch (a device came or went) fetches the keys again and
// tries once more.
func (c *Chat) startEpoch(ctx context.Context, epoch uint32) (uint32, RoomKey, error) {
	for attempt := 0; ; attempt++ {
		if held := c.Held(); len(held) > 0 {
			return 0, RoomKey{}, &HeldError{Users: held}
		}
		key := e2ee.NewRoomKey()
		envelopes, err := c.sealEnvelopes(epoch, key)
		if err != nil {
			return 0, RoomKey{}, err
		}
		err = c.acct.API.StartEpoch(ctx, c.Name, epoch, c.acct.State.Device.ID, envelopes)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest && apiErr.Code == "envelopes_mismatch" && attempt == 0 {
			if _, err := c.Refresh(ctx); err != nil {
				return 0, RoomKey{}, err
			}
			continue
		}
		if err != nil {
			return 0, RoomKey{}, err
		}
		k := RoomKey{Key: key, Devices: c.deviceSet(), Got: time.Now()}
		c.acct.addRoomKey(ctx, c.Name, epoch, k)
		c.epochs = EpochState{Current: epoch, Min: c.epochs.Min, Stale: false}
		delete(c.noEnvelope, epoch)
		return epoch, k, c.acct.Save()
	}
}

// sealEnvelopes makes an envelope of an epoch's room key for every trusted
// device of every member.
func (c *Chat) sealEnvelopes(epoch uint32, key [e2ee.KeySize]byte) ([]e2ee.Envelope, error) {
	var envelopes []e2ee.Envelope
	for _, m := range c.members {
		for _, d := range m.devices {
			e, err := e2ee.SealEnvelope(c.acct.State.Device, c.acct.Username, c.Name, epoch, m.username, d, key)
			if err != nil {
				return nil, fmt.Errorf("e2eeclient: an envelope for %s: %w", m.username, err)
			}
			envelopes = append(envelopes, e)
		}
	}
	return envelopes, nil
}
