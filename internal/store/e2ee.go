package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// End-to-end encryption's tables (migration 0006): identity keys, devices,
// each encrypted chat's epoch state, the epochs and their room-key
// envelopes, and key backups. The envelopes and backups arrive sealed by
// the caller (the key ring); the store keeps them as it is given them.

// markChanged records, in tx, that the current epoch of every encrypted
// chat the user is in must end: one of their devices came or went.
func markChanged(ctx context.Context, tx *sql.Tx, userID int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE e2ee_chats SET changed = 1
		WHERE chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = ?)`, userID)
	if err != nil {
		return fmt.Errorf("mark encrypted chats changed: %w", err)
	}
	return nil
}

// markChatChanged records, in tx, that the current epoch of one chat must
// end: its members changed. A chat that is not encrypted has no row.
func markChatChanged(ctx context.Context, tx *sql.Tx, chatID int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE e2ee_chats SET changed = 1 WHERE chat_id = ?`, chatID); err != nil {
		return fmt.Errorf("mark encrypted chat changed: %w", err)
	}
	return nil
}

// PutIdentity publishes a user's identity key. The same key again changes
// nothing; a different one is EIdentityExists unless replace is set, and
// then it revokes every device of the user, deletes their key backup and
// makes their encrypted chats' epochs stale, in one transaction.
func (s *DB) PutIdentity(ctx context.Context, userID int64, key chat.PublicKey, replace bool, at time.Time) (chat.IdentityOutcome, error) {
	const op = "put identity key"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	var old chat.PublicKey
	err = tx.QueryRowContext(ctx, `SELECT alg, pub FROM e2ee_identities WHERE user_id = ?`+s.forUpdate(), userID).Scan(&old.Alg, &old.Pub)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO e2ee_identities (user_id, alg, pub, created_at) VALUES (?, ?, ?, ?)`,
			userID, key.Alg, key.Pub, ms(at)); err != nil {
			if isUnique(err) {
				return 0, s.fail(op, chat.Errorf(chat.EIdentityExists, "Another identity key was published at the same moment; fetch it."))
			}
			return 0, s.fail(op+": insert", err)
		}
		return chat.IdentityCreated, s.fail(op+": commit", tx.Commit())
	case err != nil:
		return 0, s.fail(op+": read", err)
	}
	if old.Alg == key.Alg && string(old.Pub) == string(key.Pub) {
		return chat.IdentitySame, nil
	}
	if !replace {
		return 0, s.fail(op, chat.Errorf(chat.EIdentityExists,
			"You already have a different identity key. Restore it from your key backup, or send \"replace\": true to start over (this revokes all your devices and deletes your backup)."))
	}
	for _, step := range []struct {
		query string
		args  []any
	}{
		{`UPDATE e2ee_identities SET alg = ?, pub = ?, created_at = ? WHERE user_id = ?`, []any{key.Alg, key.Pub, ms(at), userID}},
		{`UPDATE e2ee_devices SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, []any{ms(at), userID}},
		{`DELETE FROM e2ee_backups WHERE user_id = ?`, []any{userID}},
		{`DELETE FROM e2ee_backup_items WHERE user_id = ?`, []any{userID}},
	} {
		if _, err := tx.ExecContext(ctx, step.query, step.args...); err != nil {
			return 0, s.fail(op+": replace", err)
		}
	}
	if err := markChanged(ctx, tx, userID); err != nil {
		return 0, s.fail(op, err)
	}
	return chat.IdentityReplaced, s.fail(op+": commit", tx.Commit())
}

const deviceColumns = `user_id, device_id, name, dh_alg, dh_pub, sig_alg, sig_pub, cert, created_at, revoked_at`

func scanDevice(sc interface{ Scan(...any) error }) (chat.Device, error) {
	var (
		d       chat.Device
		created int64
		revoked sql.NullInt64
	)
	if err := sc.Scan(&d.UserID, &d.ID, &d.Name, &d.DH.Alg, &d.DH.Pub, &d.Sig.Alg, &d.Sig.Pub, &d.Cert, &created, &revoked); err != nil {
		return chat.Device{}, err
	}
	d.CreatedAt = time.UnixMilli(created).UTC()
	d.RevokedAt = fromMS(revoked)
	return d, nil
}

// AddDevice publishes one of a user's devices and makes the epochs of the
// user's encrypted chats stale. Publishing the same live device again
// changes nothing (created false); a device id the user has used for other
// keys, or revoked, is EConflict, as is a user with MaxDevicesPerUser live
// devices already.
func (s *DB) AddDevice(ctx context.Context, d chat.Device) (created bool, err error) {
	const op = "add device"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	// Lock the user's identity row: two devices published at once then
	// count each other.
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM e2ee_identities WHERE user_id = ?`+s.forUpdate(), d.UserID).Scan(&one); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, s.fail(op, chat.Errorf(chat.EInvalid, "Publish your identity key (PUT /keys/identity) before a device."))
		}
		return false, s.fail(op+": lock identity", err)
	}
	old, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM e2ee_devices WHERE user_id = ? AND device_id = ?`, d.UserID, d.ID))
	switch {
	case err == nil:
		if !old.RevokedAt.IsZero() {
			return false, s.fail(op, chat.Errorf(chat.EConflict, "That device was revoked; a revoked device id cannot be used again."))
		}
		same := old.DH.Alg == d.DH.Alg && string(old.DH.Pub) == string(d.DH.Pub) && old.Sig.Alg == d.Sig.Alg &&
			string(old.Sig.Pub) == string(d.Sig.Pub) && string(old.Cert) == string(d.Cert)
		if !same {
			return false, s.fail(op, chat.Errorf(chat.EConflict, "You already published other keys under that device id."))
		}
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, s.fail(op+": read device", err)
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM e2ee_devices WHERE user_id = ? AND revoked_at IS NULL`, d.UserID).Scan(&live); err != nil {
		return false, s.fail(op+": count devices", err)
	}
	if live >= chat.MaxDevicesPerUser {
		return false, s.fail(op, chat.Errorf(chat.EConflict, "You have %d devices, the most allowed; revoke one first.", live))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO e2ee_devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		d.UserID, d.ID, d.Name, d.DH.Alg, d.DH.Pub, d.Sig.Alg, d.Sig.Pub, d.Cert, ms(d.CreatedAt)); err != nil {
		return false, s.fail(op+": insert", err)
	}
	if err := markChanged(ctx, tx, d.UserID); err != nil {
		return false, s.fail(op, err)
	}
	return true, s.fail(op+": commit", tx.Commit())
}

// RevokeDevice revokes one of a user's devices and makes the epochs of the
// user's encrypted chats stale. A device already revoked stays as it was
// (revoked false); a device the user does not have is ENotFound.
func (s *DB) RevokeDevice(ctx context.Context, userID int64, deviceID string, at time.Time) (revoked bool, err error) {
	const op = "revoke device"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	var was sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT revoked_at FROM e2ee_devices WHERE user_id = ? AND device_id = ?`+s.forUpdate(), userID, deviceID).Scan(&was)
	if errors.Is(err, sql.ErrNoRows) {
		return false, s.fail(op, chat.Errorf(chat.ENotFound, "You have no device with that id."))
	}
	if err != nil {
		return false, s.fail(op+": read", err)
	}
	if was.Valid {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE e2ee_devices SET revoked_at = ? WHERE user_id = ? AND device_id = ?`, ms(at), userID, deviceID); err != nil {
		return false, s.fail(op+": update", err)
	}
	if err := markChanged(ctx, tx, userID); err != nil {
		return false, s.fail(op, err)
	}
	return true, s.fail(op+": commit", tx.Commit())
}

// UserKeys returns a user's identity key (Alg "" when none) and devices:
// live ones, or every one with all.
func (s *DB) UserKeys(ctx context.Context, userID int64, all bool) (chat.Keys, error) {
	const op = "user keys"
	k := chat.Keys{UserID: userID}
	err := s.db.QueryRowContext(ctx, `SELECT alg, pub FROM e2ee_identities WHERE user_id = ?`, userID).Scan(&k.Identity.Alg, &k.Identity.Pub)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chat.Keys{}, s.fail(op+": read identity", err)
	}
	q := `SELECT ` + deviceColumns + ` FROM e2ee_devices WHERE user_id = ?`
	if !all {
		q += ` AND revoked_at IS NULL`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at, device_id`, userID)
	if err != nil {
		return chat.Keys{}, s.fail(op+": read devices", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return chat.Keys{}, s.fail(op+": read devices", err)
		}
		k.Devices = append(k.Devices, d)
	}
	return k, s.fail(op+": read devices", rows.Err())
}

// ChatKeys returns the identity key and live devices of every member of a
// chat, by joined_at, then user id.
func (s *DB) ChatKeys(ctx context.Context, chatID int64) ([]chat.Keys, error) {
	const op = "chat keys"
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT cm.user_id, u.username, COALESCE(i.alg, ''), i.pub
		FROM chat_members cm JOIN users u ON u.id = cm.user_id LEFT JOIN e2ee_identities i ON i.user_id = cm.user_id
		WHERE cm.chat_id = ? ORDER BY cm.joined_at, cm.user_id`, chatID)
	if err != nil {
		return nil, s.fail(op+": read members", err)
	}
	var out []chat.Keys
	at := map[int64]int{}
	for rows.Next() {
		var k chat.Keys
		if err := rows.Scan(&k.UserID, &k.Username, &k.Identity.Alg, &k.Identity.Pub); err != nil {
			rows.Close()
			return nil, s.fail(op+": read members", err)
		}
		at[k.UserID] = len(out)
		out = append(out, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.fail(op+": read members", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT d.user_id, d.device_id, d.name, d.dh_alg, d.dh_pub, d.sig_alg, d.sig_pub, d.cert, d.created_at, d.revoked_at
		FROM e2ee_devices d JOIN chat_members cm ON cm.user_id = d.user_id AND cm.chat_id = ?
		WHERE d.revoked_at IS NULL ORDER BY d.created_at, d.device_id`, chatID)
	if err != nil {
		return nil, s.fail(op+": read devices", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.fail(op+": read devices", err)
		}
		if i, ok := at[d.UserID]; ok {
			out[i].Devices = append(out[i].Devices, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op+": read devices", err)
	}
	return out, s.fail(op+": commit", tx.Commit())
}

// EpochState returns an encrypted chat's epoch state; ENotFound for a chat
// that is not encrypted.
func (s *DB) EpochState(ctx context.Context, chatID int64) (chat.EpochState, error) {
	st, err := epochState(ctx, s.db, chatID, "")
	return st, s.fail("epoch state", err)
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// epochState reads the state of a chat with lock appended to its query
// (s.forUpdate() inside a writing transaction, or "").
func epochState(ctx context.Context, q rowQuerier, chatID int64, lock string) (chat.EpochState, error) {
	var (
		st      chat.EpochState
		started sql.NullInt64
		count   sql.NullInt64
	)
	// Each table is read apart, so that a locking read locks only the rows
	// it needs (MySQL locks every row a locking read touches).
	err := q.QueryRowContext(ctx, `SELECT current_epoch, min_epoch, changed FROM e2ee_chats WHERE chat_id = ?`+lock, chatID).
		Scan(&st.Current, &st.Min, &st.Changed)
	if errors.Is(err, sql.ErrNoRows) {
		return st, chat.Errorf(chat.ENotFound, "This chat is not end-to-end encrypted.")
	}
	if err != nil {
		return st, fmt.Errorf("read: %w", err)
	}
	if st.Current == 0 {
		return st, nil
	}
	// Locked too when the state is: a locking read sees the latest row
	// even where the transaction's snapshot began earlier (MySQL).
	err = q.QueryRowContext(ctx, `SELECT started_at, messages FROM e2ee_epochs WHERE chat_id = ? AND epoch = ?`+lock, chatID, st.Current).Scan(&started, &count)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("read current epoch: %w", err)
	}
	st.StartedAt, st.Messages = fromMS(started), count.Int64
	return st, nil
}

// DeviceKey names one device of one user.
type DeviceKey struct {
	UserID   int64
	DeviceID string
}

// StartEpoch starts epoch ep.Epoch of an encrypted chat with one envelope
// for every live device of every member, in one transaction. Another epoch
// started first is EEpochConflict; envelopes that do not cover exactly the
// member devices (checked inside the transaction, so a member or device
// that changed meanwhile is seen) are EEnvelopesMismatch; a sending device
// that is not the sender's live device is EInvalid.
func (s *DB) StartEpoch(ctx context.Context, ep chat.Epoch, envelopes []chat.SealedEnvelope) error {
	const op = "start epoch"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	st, err := epochState(ctx, tx, ep.ChatID, s.forUpdate())
	if err != nil {
		return s.fail(op, err)
	}
	if ep.Epoch <= st.Current {
		return s.fail(op, chat.Errorf(chat.EEpochConflict, "Epoch %d was already started by another member; fetch it.", ep.Epoch))
	}
	if ep.Epoch != st.Current+1 {
		return s.fail(op, chat.Errorf(chat.EInvalid, "The next epoch of this chat is %d, not %d.", st.Current+1, ep.Epoch))
	}
	rows, err := tx.QueryContext(ctx, `SELECT d.user_id, d.device_id FROM e2ee_devices d
		JOIN chat_members cm ON cm.user_id = d.user_id AND cm.chat_id = ? WHERE d.revoked_at IS NULL`, ep.ChatID)
	if err != nil {
		return s.fail(op+": read member devices", err)
	}
	want := map[DeviceKey]bool{}
	for rows.Next() {
		var k DeviceKey
		if err := rows.Scan(&k.UserID, &k.DeviceID); err != nil {
			rows.Close()
			return s.fail(op+": read member devices", err)
		}
		want[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.fail(op+": read member devices", err)
	}
	if !want[DeviceKey{ep.SenderID, ep.SenderDevice}] {
		return s.fail(op, chat.Errorf(chat.EInvalid, "sender_device is not one of your live devices."))
	}
	got := make(map[DeviceKey]bool, len(envelopes))
	for _, e := range envelopes {
		k := DeviceKey{e.RecipientID, e.RecipientDevice}
		if got[k] || !want[k] {
			return s.fail(op, chat.Errorf(chat.EEnvelopesMismatch, "The envelopes do not match the members' devices: fetch GET /chats/{chat}/devices again."))
		}
		got[k] = true
	}
	if len(got) != len(want) {
		return s.fail(op, chat.Errorf(chat.EEnvelopesMismatch, "The envelopes do not match the members' devices (%d envelopes for %d devices): fetch GET /chats/{chat}/devices again.", len(got), len(want)))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO e2ee_epochs (chat_id, epoch, sender_id, sender_device, started_at, messages) VALUES (?, ?, ?, ?, ?, 0)`,
		ep.ChatID, ep.Epoch, ep.SenderID, ep.SenderDevice, ms(ep.StartedAt)); err != nil {
		if isUnique(err) {
			return s.fail(op, chat.Errorf(chat.EEpochConflict, "Epoch %d was already started by another member; fetch it.", ep.Epoch))
		}
		return s.fail(op+": insert epoch", err)
	}
	for chunk := range slices.Chunk(envelopes, 200) {
		args := make([]any, 0, 6*len(chunk))
		for _, e := range chunk {
			args = append(args, ep.ChatID, ep.Epoch, e.RecipientID, e.RecipientDevice, e.KeyVersion, e.Body)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO e2ee_envelopes (chat_id, epoch, recipient_id, recipient_device, key_version, body) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(chunk)), ", "), args...); err != nil {
			return s.fail(op+": insert envelopes", err)
		}
	}
	// A change of members or devices ends the old epoch for good: no
	// message may use it any more. Otherwise (a full or old epoch, or a
	// first) messages still on their way on the previous epoch are taken.
	least := st.Current
	if st.Changed || st.Current == 0 {
		least = ep.Epoch
	}
	if _, err := tx.ExecContext(ctx, `UPDATE e2ee_chats SET current_epoch = ?, min_epoch = ?, changed = 0 WHERE chat_id = ?`,
		ep.Epoch, least, ep.ChatID); err != nil {
		return s.fail(op+": update state", err)
	}
	return s.fail(op+": commit", tx.Commit())
}

// Envelope returns a recipient device's envelope of an epoch with who
// started the epoch; ENoEnvelope when there is none.
func (s *DB) Envelope(ctx context.Context, chatID, epoch, userID int64, deviceID string) (chat.Epoch, chat.SealedEnvelope, error) {
	const op = "envelope"
	ep := chat.Epoch{ChatID: chatID, Epoch: epoch}
	env := chat.SealedEnvelope{RecipientID: userID, RecipientDevice: deviceID}
	var started int64
	err := s.db.QueryRowContext(ctx, `SELECT e.sender_id, u.username, e.sender_device, e.started_at, v.key_version, v.body
		FROM e2ee_envelopes v JOIN e2ee_epochs e ON e.chat_id = v.chat_id AND e.epoch = v.epoch JOIN users u ON u.id = e.sender_id
		WHERE v.chat_id = ? AND v.epoch = ? AND v.recipient_id = ? AND v.recipient_device = ?`, chatID, epoch, userID, deviceID).
		Scan(&ep.SenderID, &ep.SenderName, &ep.SenderDevice, &started, &env.KeyVersion, &env.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return ep, env, s.fail(op, chat.Errorf(chat.ENoEnvelope, "There is no envelope of epoch %d for that device of yours.", epoch))
	}
	if err != nil {
		return ep, env, s.fail(op+": read", err)
	}
	ep.StartedAt = time.UnixMilli(started).UTC()
	return ep, env, nil
}

// UseEpoch checks that a message of an encrypted chat may use the epoch
// and device its mse1 text names, and counts it on that epoch, in one
// transaction: the device must be the sender's and live, and the epoch at
// least the chat's least and at most its current, which must not be stale.
// Any of these failing is EStaleEpoch.
func (s *DB) UseEpoch(ctx context.Context, u chat.MessageUse) error {
	const op = "use epoch"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	if err := s.useEpoch(ctx, tx, u); err != nil {
		return s.fail(op, err)
	}
	return s.fail(op+": commit", tx.Commit())
}

// useEpoch is UseEpoch inside tx: InsertMessages runs it for each message
// of an encrypted chat that it stores, so that the check, the count and
// the message commit together (a group on MySQL reads what it needs in its
// request instead, and epochReads.count checks and counts).
func (s *DB) useEpoch(ctx context.Context, tx *sql.Tx, u chat.MessageUse) error {
	st, err := epochState(ctx, tx, u.ChatID, s.forUpdate())
	if err != nil {
		return fmt.Errorf("epoch state: %w", err)
	}
	var revoked sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT revoked_at FROM e2ee_devices WHERE user_id = ? AND device_id = ?`, u.UserID, u.DeviceID).Scan(&revoked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read device: %w", err)
	}
	if err := checkUse(st, deviceState{found: err == nil, revoked: revoked.Valid}, u); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE e2ee_epochs SET messages = messages + 1 WHERE chat_id = ? AND epoch = ?`, u.ChatID, u.Epoch); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

// deviceState is what a message's use of an epoch needs to know of the
// device it names.
type deviceState struct{ found, revoked bool }

// checkUse says whether u may use its epoch, with its chat in state st and
// its device in d: EStaleEpoch when not. useEpoch and epochReads.count
// both ask it, and count the use when it may.
func checkUse(st chat.EpochState, d deviceState, u chat.MessageUse) error {
	switch {
	case !d.found:
		return chat.Errorf(chat.EStaleEpoch, "The message names a device that is not yours.")
	case d.revoked:
		return chat.Errorf(chat.EStaleEpoch, "The message names a device of yours that was revoked.")
	case u.Epoch > st.Current:
		return chat.Errorf(chat.EStaleEpoch, "Epoch %d has not started in this chat (the current epoch is %d).", u.Epoch, st.Current)
	case u.Epoch < st.Min:
		return chat.Errorf(chat.EStaleEpoch, "Epoch %d is no longer accepted in this chat: start a new epoch and send again.", u.Epoch)
	case u.Epoch == st.Current && st.Stale(u.At):
		return chat.Errorf(chat.EStaleEpoch, "Epoch %d is stale: start a new epoch and send again.", u.Epoch)
	}
	return nil
}

// PutBackup stores (or replaces) a user's key backup header, sealed.
func (s *DB) PutBackup(ctx context.Context, userID int64, b chat.SealedBlob, at time.Time) error {
	q := `INSERT INTO e2ee_backups (user_id, key_version, body, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET key_version = excluded.key_version, body = excluded.body, updated_at = excluded.updated_at`
	if s.dialect == MySQL {
		q = `INSERT INTO e2ee_backups (user_id, key_version, body, updated_at) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE key_version = VALUES(key_version), body = VALUES(body), updated_at = VALUES(updated_at)`
	}
	_, err := s.db.ExecContext(ctx, q, userID, b.KeyVersion, b.Body, ms(at))
	return s.fail("put key backup", err)
}

// Backup returns a user's key backup header; ENoBackup before the first.
func (s *DB) Backup(ctx context.Context, userID int64) (chat.SealedBlob, error) {
	var b chat.SealedBlob
	err := s.db.QueryRowContext(ctx, `SELECT key_version, body FROM e2ee_backups WHERE user_id = ?`, userID).Scan(&b.KeyVersion, &b.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return b, s.fail("key backup", chat.Errorf(chat.ENoBackup, "You have no key backup yet."))
	}
	return b, s.fail("key backup", err)
}

// PutBackupItems adds room-key items to a user's backup in one
// transaction; an item for a chat and epoch already there replaces it and
// keeps its id.
func (s *DB) PutBackupItems(ctx context.Context, userID int64, items []chat.BackupItem, at time.Time) error {
	const op = "put key backup items"
	q := `INSERT INTO e2ee_backup_items (user_id, chat_name, epoch, key_version, body, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, chat_name, epoch) DO UPDATE SET key_version = excluded.key_version, body = excluded.body`
	if s.dialect == MySQL {
		q = `INSERT INTO e2ee_backup_items (user_id, chat_name, epoch, key_version, body, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE key_version = VALUES(key_version), body = VALUES(body)`
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return s.fail(op+": prepare", err)
	}
	defer st.Close()
	for _, it := range items {
		if _, err := st.ExecContext(ctx, userID, it.ChatName, it.Epoch, it.KeyVersion, it.Body, ms(at)); err != nil {
			return s.fail(op+": insert", err)
		}
	}
	return s.fail(op+": commit", tx.Commit())
}

// BackupItems returns up to limit of a user's backup items with id > after,
// in id order, and whether more follow.
func (s *DB) BackupItems(ctx context.Context, userID, after int64, limit int) ([]chat.BackupItem, bool, error) {
	const op = "key backup items"
	rows, err := s.db.QueryContext(ctx, `SELECT id, chat_name, epoch, key_version, body FROM e2ee_backup_items
		WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?`, userID, after, limit+1)
	if err != nil {
		return nil, false, s.fail(op, err)
	}
	defer rows.Close()
	var out []chat.BackupItem
	for rows.Next() {
		var it chat.BackupItem
		if err := rows.Scan(&it.ID, &it.ChatName, &it.Epoch, &it.KeyVersion, &it.Body); err != nil {
			return nil, false, s.fail(op, err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, false, s.fail(op, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// E2EEPeers returns the users who share an encrypted chat with userID,
// userID among them when they are in one: those to tell when the user's
// keys change.
func (s *DB) E2EEPeers(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT other.user_id FROM chat_members mine
		JOIN e2ee_chats ec ON ec.chat_id = mine.chat_id
		JOIN chat_members other ON other.chat_id = mine.chat_id
		WHERE mine.user_id = ?`, userID)
	if err != nil {
		return nil, s.fail("e2ee peers", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail("e2ee peers", err)
		}
		out = append(out, id)
	}
	return out, s.fail("e2ee peers", rows.Err())
}
