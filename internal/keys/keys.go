// Package keys is the server's side of end-to-end encryption (E2EE.md):
// publishing identity keys and devices (their owner only), listing them,
// starting epochs with one room-key envelope per member device, handing
// each device its own envelope, the key backup, and the check every
// message of an encrypted chat passes before it is stored. It uses
// internal/e2ee only to check shapes, certificates and signatures: the
// server never holds a private key, a room key or a plaintext, and it seals
// the opaque blobs it keeps (envelopes, backups) with the key ring.
package keys

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Store is what the keys service needs of the database.
type Store interface {
	UserByUsername(ctx context.Context, username string) (chat.User, error)
	PutIdentity(ctx context.Context, userID int64, key chat.PublicKey, replace bool, at time.Time) (chat.IdentityOutcome, error)
	AddDevice(ctx context.Context, d chat.Device) (bool, error)
	RevokeDevice(ctx context.Context, userID int64, deviceID string, at time.Time) (bool, error)
	UserKeys(ctx context.Context, userID int64, all bool) (chat.Keys, error)
	ChatKeys(ctx context.Context, chatID int64) ([]chat.Keys, error)
	EpochState(ctx context.Context, chatID int64) (chat.EpochState, error)
	StartEpoch(ctx context.Context, ep chat.Epoch, envelopes []chat.SealedEnvelope) error
	Envelope(ctx context.Context, chatID, epoch, userID int64, deviceID string) (chat.Epoch, chat.SealedEnvelope, error)
	UseEpoch(ctx context.Context, u chat.MessageUse) error
	PutBackup(ctx context.Context, userID int64, b chat.SealedBlob, at time.Time) error
	Backup(ctx context.Context, userID int64) (chat.SealedBlob, error)
	PutBackupItems(ctx context.Context, userID int64, items []chat.BackupItem, at time.Time) error
	BackupItems(ctx context.Context, userID, after int64, limit int) ([]chat.BackupItem, bool, error)
	E2EEPeers(ctx context.Context, userID int64) ([]int64, error)
}

// Options configure a Service.
type Options struct {
	Store  Store
	Ring   *keyring.Ring
	Broker chat.Broker
	Log    *slog.Logger
	Now    func() time.Time
	// MaxMessageBytes is the largest plaintext message; an mse1 text may
	// be e2ee.MaxMessageTextBytes of it.
	MaxMessageBytes int
}

// Service is the server's side of end-to-end encryption.
type Service struct {
	store    Store
	ring     *keyring.Ring
	broker   chat.Broker
	log      *slog.Logger
	now      func() time.Time
	maxBytes int
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, ring: o.Ring, broker: o.Broker, log: o.Log, now: o.Now, maxBytes: e2ee.MaxMessageTextBytes(o.MaxMessageBytes)}
}

// MaxMessageTextBytes is the largest mse1 text a message may carry.
func (s *Service) MaxMessageTextBytes() int { return s.maxBytes }

// Additional data of the sealed blobs: each binds a blob to its row, so
// that a blob copied to another row (another device's envelope, another
// user's backup) does not open.
const (
	aadEnvelope   = "mapsim-chat/v1/e2ee-envelope\x00"
	aadBackup     = "mapsim-chat/v1/e2ee-backup\x00"
	aadBackupItem = "mapsim-chat/v1/e2ee-backup-item\x00"
)

func envelopeAAD(chatID, epoch, userID int64, deviceID string) []byte {
	b := append(make([]byte, 0, len(aadEnvelope)+24+len(deviceID)), aadEnvelope...)
	b = binary.BigEndian.AppendUint64(b, uint64(chatID))
	b = binary.BigEndian.AppendUint64(b, uint64(epoch))
	b = binary.BigEndian.AppendUint64(b, uint64(userID))
	return append(b, deviceID...)
}

func backupAAD(userID int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(aadBackup), uint64(userID))
}

func backupItemAAD(userID int64, chatName string, epoch int64) []byte {
	b := binary.BigEndian.AppendUint64([]byte(aadBackupItem), uint64(userID))
	b = binary.BigEndian.AppendUint64(b, uint64(epoch))
	return append(b, chatName...)
}

// Invalid turns a refusal of internal/e2ee into a sentence that says what
// was wrong ("iv is 11 bytes, not 12"), with code: the package's own
// sentences are written for a message a client could not open.
func Invalid(err error, code string) error {
	var ce *chat.Error
	if !errors.As(err, &ce) {
		return err
	}
	what := strings.TrimSuffix(err.Error(), ": "+ce.Error())
	what = strings.ReplaceAll(what, "e2ee: ", "")
	msg := strings.TrimSuffix(ce.Message, ".")
	if what != "" && what != err.Error() {
		msg += " (" + what + ")"
	}
	if code == "" {
		code = ce.Code
	}
	return &chat.Error{Code: code, Message: msg + "."}
}

// notEncrypted answers a call about keys in a chat that is not end-to-end
// encrypted.
func notEncrypted(c chat.Chat) error {
	if c.Kind == chat.KindGlobal {
		return chat.Errorf(chat.EInvalid, "The global chat is not end-to-end encrypted.")
	}
	return chat.Errorf(chat.EInvalid, "This chat is not end-to-end encrypted.")
}

// PublishIdentity publishes the asking user's identity key. A different
// key than the one published is refused unless replace is set, which
// revokes all the user's devices and deletes their backup.
func (s *Service) PublishIdentity(ctx context.Context, id chat.Identity, key e2ee.PublicKey, replace bool) (chat.IdentityOutcome, error) {
	if err := key.CheckSigning(); err != nil {
		return 0, Invalid(err, chat.EInvalid)
	}
	out, err := s.store.PutIdentity(ctx, id.UserID, chat.PublicKey{Alg: key.Alg, Pub: key.Pub}, replace, s.now().UTC())
	if err != nil {
		return 0, err
	}
	if out != chat.IdentitySame {
		s.keysChanged(ctx, id)
	}
	return out, nil
}

// CheckDeviceName checks a device's name: at most MaxDeviceNameChars
// characters of plain text, no control characters.
func CheckDeviceName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > chat.MaxDeviceNameChars {
		return "", chat.Errorf(chat.EInvalid, "A device name is at most %d characters of text.", chat.MaxDeviceNameChars)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return "", chat.Errorf(chat.EInvalid, "A device name may not hold control characters (U+%04X).", r)
		}
	}
	return name, nil
}

// PublishDevice publishes one of the asking user's devices, certified by
// their identity key. It reports whether the device is new (false: the
// same device again).
func (s *Service) PublishDevice(ctx context.Context, id chat.Identity, d e2ee.Device, name string) (chat.Device, bool, error) {
	name, err := CheckDeviceName(name)
	if err != nil {
		return chat.Device{}, false, err
	}
	if err := d.Check(); err != nil {
		return chat.Device{}, false, Invalid(err, chat.EInvalid)
	}
	mine, err := s.store.UserKeys(ctx, id.UserID, false)
	if err != nil {
		return chat.Device{}, false, err
	}
	if mine.Identity.Alg == "" {
		return chat.Device{}, false, chat.Errorf(chat.EInvalid, "Publish your identity key (PUT /keys/identity) before a device.")
	}
	identity := e2ee.PublicKey{Alg: mine.Identity.Alg, Pub: mine.Identity.Pub}
	if err := e2ee.VerifyDevice(identity, id.Username, d); err != nil {
		code := chat.EInvalid
		if errors.Is(err, e2ee.ErrBadCertificate) {
			code = chat.EBadCertificate
		}
		return chat.Device{}, false, Invalid(err, code)
	}
	dev := chat.Device{
		UserID: id.UserID, ID: d.ID, Name: name, DH: chat.PublicKey{Alg: d.DH.Alg, Pub: d.DH.Pub},
		Sig: chat.PublicKey{Alg: d.Sig.Alg, Pub: d.Sig.Pub}, Cert: d.Cert, CreatedAt: time.UnixMilli(s.now().UnixMilli()).UTC(),
	}
	created, err := s.store.AddDevice(ctx, dev)
	if err != nil {
		return chat.Device{}, false, err
	}
	if created {
		s.keysChanged(ctx, id)
	}
	return dev, created, nil
}

// RevokeDevice revokes one of the asking user's devices; every encrypted
// chat they are in needs a new epoch.
func (s *Service) RevokeDevice(ctx context.Context, id chat.Identity, deviceID string) error {
	if err := e2ee.CheckDeviceID(deviceID); err != nil {
		return chat.Errorf(chat.ENotFound, "You have no device with that id.")
	}
	revoked, err := s.store.RevokeDevice(ctx, id.UserID, deviceID, s.now().UTC())
	if err != nil {
		return err
	}
	if revoked {
		s.keysChanged(ctx, id)
	}
	return nil
}

// UserKeys returns a user's identity key and live devices; all adds the
// revoked ones, for the user's own keys only.
func (s *Service) UserKeys(ctx context.Context, id chat.Identity, username string, all bool) (chat.Keys, error) {
	u, err := s.store.UserByUsername(ctx, strings.TrimSpace(username))
	if chat.ErrorCode(err) == chat.ENotFound || (err == nil && !u.DisabledAt.IsZero()) {
		return chat.Keys{}, chat.Errorf(chat.ENotFound, "No user named %q.", chat.Clip(username, 40))
	}
	if err != nil {
		return chat.Keys{}, err
	}
	if all && u.ID != id.UserID {
		return chat.Keys{}, chat.Errorf(chat.EForbidden, "Only your own revoked devices are listed.")
	}
	k, err := s.store.UserKeys(ctx, u.ID, all)
	k.Username = u.Username
	return k, err
}

// ChatKeys returns every member's identity key and live devices of an
// encrypted chat the caller has resolved (membership checked).
func (s *Service) ChatKeys(ctx context.Context, c chat.Chat) ([]chat.Keys, error) {
	if !c.E2EE {
		return nil, notEncrypted(c)
	}
	return s.store.ChatKeys(ctx, c.ID)
}

// Epoch returns an encrypted chat's epoch state as clients see it.
func (s *Service) Epoch(ctx context.Context, c chat.Chat) (wire.Epoch, error) {
	if !c.E2EE {
		return wire.Epoch{}, notEncrypted(c)
	}
	st, err := s.store.EpochState(ctx, c.ID)
	if err != nil {
		return wire.Epoch{}, err
	}
	return s.EpochWire(st), nil
}

// EpochWire converts a stored state, staleness reckoned now.
func (s *Service) EpochWire(st chat.EpochState) wire.Epoch {
	return wire.Epoch{Current: st.Current, Min: st.Min, Stale: st.Stale(s.now())}
}

// StartRequest starts an epoch.
type StartRequest struct {
	Epoch        int64
	SenderDevice string
	Envelopes    []e2ee.Envelope
}

// ConflictError is the answer to an epoch another member started first:
// Current is the chat's epoch now.
type ConflictError struct {
	Err     *chat.Error
	Current int64
}

// Error implements the error interface.
func (e *ConflictError) Error() string { return e.Err.Error() }

// Unwrap lets errors.As find the chat.Error.
func (e *ConflictError) Unwrap() error { return e.Err }

// StartEpoch starts the next epoch of an encrypted chat the caller has
// resolved, with one envelope for every live device of every member, each
// signed by the sending device, and tells the members.
func (s *Service) StartEpoch(ctx context.Context, id chat.Identity, c chat.Chat, req StartRequest) error {
	if !c.E2EE {
		return notEncrypted(c)
	}
	if req.Epoch < 1 || req.Epoch > 1<<32-1 {
		return chat.Errorf(chat.EInvalid, "epoch must be a whole number from 1 to 4294967295.")
	}
	if len(req.Envelopes) == 0 {
		return chat.Errorf(chat.EInvalid, "envelopes must hold one envelope for every device of every member.")
	}
	if len(req.Envelopes) > chat.MaxEnvelopesPerEpoch {
		return chat.Errorf(chat.EInvalid, "An epoch carries at most %d envelopes.", chat.MaxEnvelopesPerEpoch)
	}
	if err := e2ee.CheckDeviceID(req.SenderDevice); err != nil {
		return chat.Errorf(chat.EInvalid, "sender_device must be one of your device ids.")
	}
	members, err := s.store.ChatKeys(ctx, c.ID)
	if err != nil {
		return err
	}
	byName := make(map[string]*chat.Keys, len(members))
	for i := range members {
		byName[strings.ToLower(members[i].Username)] = &members[i]
	}
	var sender *e2ee.Device
	if me := byName[strings.ToLower(id.Username)]; me != nil {
		for _, d := range me.Devices {
			if d.ID == req.SenderDevice {
				sender = &e2ee.Device{ID: d.ID, DH: e2ee.PublicKey{Alg: d.DH.Alg, Pub: d.DH.Pub}, Sig: e2ee.PublicKey{Alg: d.Sig.Alg, Pub: d.Sig.Pub}, Cert: d.Cert}
			}
		}
	}
	if sender == nil {
		return chat.Errorf(chat.EInvalid, "sender_device is not one of your live devices.")
	}
	sealed := make([]chat.SealedEnvelope, len(req.Envelopes))
	for i, env := range req.Envelopes {
		member := byName[strings.ToLower(env.Recipient)]
		if member == nil {
			return chat.Errorf(chat.EEnvelopesMismatch, "Envelope %d is for %q, who is not a member of this chat.", i, chat.Clip(env.Recipient, 40))
		}
		if err := e2ee.VerifyEnvelope(*sender, id.Username, c.Name, uint32(req.Epoch), env); err != nil {
			return Invalid(err, chat.EInvalid)
		}
		// The recipient is stored as the member's own spelling.
		env.Recipient = member.Username
		body, err := json.Marshal(env)
		if err != nil {
			return err
		}
		v, blob := s.ring.Seal(body, envelopeAAD(c.ID, req.Epoch, member.UserID, env.RecipientDevice))
		sealed[i] = chat.SealedEnvelope{RecipientID: member.UserID, RecipientDevice: env.RecipientDevice, KeyVersion: v, Body: blob}
	}
	ep := chat.Epoch{ChatID: c.ID, Epoch: req.Epoch, SenderID: id.UserID, SenderDevice: req.SenderDevice, StartedAt: s.now().UTC()}
	if err := s.store.StartEpoch(ctx, ep, sealed); err != nil {
		if chat.ErrorCode(err) == chat.EEpochConflict {
			var ce *chat.Error
			errors.As(err, &ce)
			st, serr := s.store.EpochState(ctx, c.ID)
			if serr != nil {
				return serr
			}
			return &ConflictError{Err: ce, Current: st.Current}
		}
		return err
	}
	frame, _ := json.Marshal(wire.EpochFrame{Type: wire.TypeEpoch, ChatName: c.Name, Epoch: req.Epoch})
	s.publish(ctx, chat.Event{ChatID: c.ID, Frame: frame})
	return nil
}

// Envelope is one device's envelope of an epoch, opened from its seal.
type Envelope struct {
	Epoch    chat.Epoch
	Envelope e2ee.Envelope
}

// Envelope returns the asking user's envelope of an epoch for one of their
// devices.
func (s *Service) Envelope(ctx context.Context, id chat.Identity, c chat.Chat, epoch int64, deviceID string) (Envelope, error) {
	if !c.E2EE {
		return Envelope{}, notEncrypted(c)
	}
	if err := e2ee.CheckDeviceID(deviceID); err != nil {
		return Envelope{}, chat.Errorf(chat.EInvalid, "device must be one of your device ids.")
	}
	if epoch < 1 || epoch > 1<<32-1 {
		return Envelope{}, chat.Errorf(chat.EInvalid, "The epoch must be a whole number from 1 to 4294967295.")
	}
	ep, sealed, err := s.store.Envelope(ctx, c.ID, epoch, id.UserID, deviceID)
	if err != nil {
		return Envelope{}, err
	}
	body, err := s.ring.Open(sealed.KeyVersion, sealed.Body, envelopeAAD(c.ID, epoch, id.UserID, deviceID))
	if err != nil {
		return Envelope{}, chat.Errorf(chat.EInternal, "The stored envelope does not open: %v", err)
	}
	var env e2ee.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Envelope{}, chat.Errorf(chat.EInternal, "The stored envelope does not decode: %v", err)
	}
	return Envelope{Epoch: ep, Envelope: env}, nil
}

// CheckMessage checks the text of a message or edit of an encrypted chat
// before it is stored: an mse1 text (else EE2EERequired) of at most
// MaxMessageTextBytes, on an epoch and a device the chat accepts from the
// sender (else EStaleEpoch), and counts it on its epoch.
func (s *Service) CheckMessage(ctx context.Context, id chat.Identity, c chat.Chat, text string) error {
	use, err := s.MessageUse(id, c, text)
	if err != nil {
		return err
	}
	return s.store.UseEpoch(ctx, use)
}

// MessageUse checks the shape of the text of a message of an encrypted
// chat (an mse1 text, else EE2EERequired, of at most MaxMessageTextBytes)
// and returns the epoch and device it names, for the store to check and
// count as it stores the message (chat.NewMessage.Use).
func (s *Service) MessageUse(id chat.Identity, c chat.Chat, text string) (chat.MessageUse, error) {
	m, err := e2ee.ParseMessage(text, s.maxBytes)
	if errors.Is(err, e2ee.ErrTooLarge) {
		return chat.MessageUse{}, chat.Errorf(chat.ETooLarge, "The encrypted message is %d bytes; the limit is %d.", len(text), s.maxBytes)
	}
	if err != nil {
		if !strings.HasPrefix(text, e2ee.MessagePrefix) {
			return chat.MessageUse{}, chat.Errorf(chat.EE2EERequired, "This chat is end-to-end encrypted: send an mse1 message, never plaintext.")
		}
		return chat.MessageUse{}, Invalid(err, chat.EE2EERequired)
	}
	return chat.MessageUse{ChatID: c.ID, UserID: id.UserID, DeviceID: m.DeviceID, Epoch: int64(m.Epoch), At: s.now()}, nil
}

// PutBackup stores the asking user's key backup header, sealed.
func (s *Service) PutBackup(ctx context.Context, id chat.Identity, h e2ee.BackupHeader) error {
	switch {
	case h.KDF.Alg != e2ee.BackupKDFAlg:
		return chat.Errorf(chat.EInvalid, "kdf.alg must be %q.", e2ee.BackupKDFAlg)
	case h.KDF.Iterations < e2ee.MinBackupIterations || h.KDF.Iterations > e2ee.MaxBackupIterations:
		return chat.Errorf(chat.EInvalid, "kdf.iterations must be from %d to %d.", e2ee.MinBackupIterations, e2ee.MaxBackupIterations)
	case len(h.KDF.Salt) != e2ee.BackupSaltSize:
		return chat.Errorf(chat.EInvalid, "kdf.salt must be %d bytes.", e2ee.BackupSaltSize)
	case len(h.Identity.IV) != e2ee.IVSize:
		return chat.Errorf(chat.EInvalid, "identity.iv must be %d bytes.", e2ee.IVSize)
	case len(h.Identity.CT) < e2ee.TagSize || len(h.Identity.CT) > maxIdentityCT:
		return chat.Errorf(chat.EInvalid, "identity.ct must be from %d to %d bytes.", e2ee.TagSize, maxIdentityCT)
	}
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	v, blob := s.ring.Seal(body, backupAAD(id.UserID))
	return s.store.PutBackup(ctx, id.UserID, chat.SealedBlob{KeyVersion: v, Body: blob}, s.now().UTC())
}

// maxIdentityCT bounds the encrypted identity key of a backup header: a
// PKCS#8 P-256 key in its JSON is about 300 bytes.
const maxIdentityCT = 2048

// Backup returns the asking user's key backup header.
func (s *Service) Backup(ctx context.Context, id chat.Identity) (json.RawMessage, error) {
	b, err := s.store.Backup(ctx, id.UserID)
	if err != nil {
		return nil, err
	}
	body, err := s.ring.Open(b.KeyVersion, b.Body, backupAAD(id.UserID))
	if err != nil {
		return nil, chat.Errorf(chat.EInternal, "The stored key backup does not open: %v", err)
	}
	return body, nil
}

// roomKeyCTSize is the size of an encrypted room key: 32 bytes and a tag.
const roomKeyCTSize = e2ee.KeySize + e2ee.TagSize

// maxChatName is the longest chat name (chats.name is 64 characters).
const maxChatName = 64

// isChatName reports whether s can be a chat's name: 1 to maxChatName
// printable ASCII characters (direct:3:7, group:…, global).
func isChatName(s string) bool {
	if s == "" || len(s) > maxChatName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// PutBackupItems adds room keys to the asking user's backup.
func (s *Service) PutBackupItems(ctx context.Context, id chat.Identity, items []e2ee.RoomKeyBackup) error {
	if len(items) == 0 {
		return chat.Errorf(chat.EInvalid, "items must hold at least one room key.")
	}
	if len(items) > chat.MaxBackupItemsAtOnce {
		return chat.Errorf(chat.EInvalid, "Send at most %d items at once.", chat.MaxBackupItemsAtOnce)
	}
	out := make([]chat.BackupItem, len(items))
	for i, it := range items {
		switch {
		case !isChatName(it.Chat):
			return chat.Errorf(chat.EInvalid, "Item %d: chat must be a chat's name.", i)
		case it.Epoch == 0:
			return chat.Errorf(chat.EInvalid, "Item %d: epoch must be from 1 to 4294967295.", i)
		case len(it.IV) != e2ee.IVSize:
			return chat.Errorf(chat.EInvalid, "Item %d: iv must be %d bytes.", i, e2ee.IVSize)
		case len(it.CT) != roomKeyCTSize:
			return chat.Errorf(chat.EInvalid, "Item %d: ct must be %d bytes.", i, roomKeyCTSize)
		}
		body, err := json.Marshal(it)
		if err != nil {
			return err
		}
		v, blob := s.ring.Seal(body, backupItemAAD(id.UserID, it.Chat, int64(it.Epoch)))
		out[i] = chat.BackupItem{ChatName: it.Chat, Epoch: int64(it.Epoch), SealedBlob: chat.SealedBlob{KeyVersion: v, Body: blob}}
	}
	return s.store.PutBackupItems(ctx, id.UserID, out, s.now().UTC())
}

// MaxBackupPage is the most backup items one page holds.
const MaxBackupPage = 500

// BackupItems returns a page of the asking user's backup items after an
// id, and whether more follow.
func (s *Service) BackupItems(ctx context.Context, id chat.Identity, after int64, limit int) (wire.BackupItems, error) {
	items, more, err := s.store.BackupItems(ctx, id.UserID, after, limit)
	if err != nil {
		return wire.BackupItems{}, err
	}
	out := wire.BackupItems{Items: make([]wire.BackupItem, len(items)), HasMore: more}
	for i, it := range items {
		body, err := s.ring.Open(it.KeyVersion, it.Body, backupItemAAD(id.UserID, it.ChatName, it.Epoch))
		if err != nil {
			return wire.BackupItems{}, chat.Errorf(chat.EInternal, "A stored backup item does not open: %v", err)
		}
		var rk e2ee.RoomKeyBackup
		if err := json.Unmarshal(body, &rk); err != nil {
			return wire.BackupItems{}, chat.Errorf(chat.EInternal, "A stored backup item does not decode: %v", err)
		}
		out.Items[i] = wire.BackupItem{ID: it.ID, Chat: it.ChatName, Epoch: it.Epoch, IV: e2ee.EncodeB64U(rk.IV), CT: e2ee.EncodeB64U(rk.CT)}
	}
	return out, nil
}

// keysChanged tells everyone who shares an encrypted chat with the user
// (the user's own other connections too) that their keys changed.
func (s *Service) keysChanged(ctx context.Context, id chat.Identity) {
	peers, err := s.store.E2EEPeers(ctx, id.UserID)
	if err != nil {
		s.log.Warn("e2ee: find whom to tell of changed keys", "user_id", id.UserID, "err", err)
		return
	}
	if len(peers) == 0 {
		return
	}
	frame, _ := json.Marshal(wire.KeysFrame{Type: wire.TypeKeys, Username: id.Username})
	s.publish(ctx, chat.Event{UserIDs: peers, Frame: frame})
}

// publish hands an event to the broker. A frame that does not arrive is
// not lost: clients read the state again on reconnect.
func (s *Service) publish(ctx context.Context, ev chat.Event) {
	if err := s.broker.Publish(ctx, ev); err != nil {
		s.log.Warn("e2ee: publish event", "chat_id", ev.ChatID, "err", err)
	}
}
