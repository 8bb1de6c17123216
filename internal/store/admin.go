package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// shownName is the name a user's messages and memberships show: the
// username, or chat.DeletedUsername once the account is deleted. The
// queries that use it join users as u.
const shownName = `CASE WHEN u.deleted_at IS NULL THEN u.username ELSE '` + chat.DeletedUsername + `' END`

// DeleteUser deletes an account at the given time, in one transaction: the
// account is disabled (so every running server closes its sockets, as for
// disable-user), every session of it is revoked, its password and email are
// cleared, and it is marked deleted. The row stays, with its username
// reserved, because its messages and files refer to it. It returns the
// files the user uploaded that are still stored, for the caller to remove
// when asked to. EConflict when the account is already deleted.
func (s *DB) DeleteUser(ctx context.Context, userID int64, at time.Time) ([]chat.File, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("delete user: begin", err)
	}
	defer tx.Rollback()
	var deleted sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT deleted_at FROM users WHERE id = ?`+s.forUpdate(), userID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.fail("delete user", chat.Errorf(chat.ENotFound, "No such user."))
	}
	if err != nil {
		return nil, s.fail("delete user: read user", err)
	}
	if deleted.Valid {
		return nil, s.fail("delete user", chat.Errorf(chat.EConflict, "That account is already deleted."))
	}
	// "!" is no hash any password verifies against.
	// Its display name and avatar go with it: the account is shown as
	// "deleted user" from now on.
	if _, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = ?, disabled_at = COALESCE(disabled_at, ?), password_hash = '!', email = NULL,
		display_name = '', avatar_at = NULL WHERE id = ?`,
		ms(at), ms(at), userID); err != nil {
		return nil, s.fail("delete user: mark deleted", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM avatars WHERE user_id = ?`, userID); err != nil {
		return nil, s.fail("delete user: remove avatar", err)
	}
	// A user disabled earlier is not picked up again by the servers'
	// revocation watch through disabled_at, so the sessions revoked now
	// (there are none left if the disable revoked them) close any socket.
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, ms(at), userID); err != nil {
		return nil, s.fail("delete user: revoke sessions", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+fileColumns+` FROM files WHERE uploader_id = ? AND expired_at IS NULL ORDER BY created_at`, userID)
	files, err := s.readFiles("delete user: list files", rows, err)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("delete user: commit", err)
	}
	return files, nil
}

// Users returns every account, by id, with the start of its newest kept
// session (the last login, as far as the sessions still held tell) and how
// many of its sessions are live at now.
func (s *DB) Users(ctx context.Context, now time.Time) ([]chat.UserSummary, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+`,
		(SELECT MAX(created_at) FROM sessions s WHERE s.user_id = users.id),
		(SELECT COUNT(*) FROM sessions s WHERE s.user_id = users.id AND s.revoked_at IS NULL AND s.expires_at > ?)
		FROM users ORDER BY id`, ms(now))
	if err != nil {
		return nil, s.fail("list users", err)
	}
	defer rows.Close()
	var out []chat.UserSummary
	for rows.Next() {
		var (
			u    chat.UserSummary
			last sql.NullInt64
		)
		var extra = []any{&last, &u.LiveSessions}
		if u.User, err = scanUser(multiScanner{rows, extra}); err != nil {
			return nil, s.fail("list users: read user", err)
		}
		u.LastLogin = fromMS(last)
		out = append(out, u)
	}
	return out, s.fail("list users", rows.Err())
}

// multiScanner lets scanUser read a row that has more columns after the
// user's: the extra ones go to extra.
type multiScanner struct {
	row   rowScanner
	extra []any
}

func (m multiScanner) Scan(dest ...any) error { return m.row.Scan(append(dest, m.extra...)...) }

// LiveSessions returns a user's sessions that are neither revoked nor
// expired at now, newest first.
func (s *DB) LiveSessions(ctx context.Context, userID int64, now time.Time) ([]chat.Session, error) {
	rows, err := s.query(ctx, sessionSelect+`WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC`, userID, ms(now))
	if err != nil {
		return nil, s.fail("live sessions", err)
	}
	defer rows.Close()
	var out []chat.Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, s.fail("live sessions: read session", err)
		}
		out = append(out, sess)
	}
	return out, s.fail("live sessions", rows.Err())
}

// InsertUnlock stores an unlock for every running server to apply.
func (s *DB) InsertUnlock(ctx context.Context, u chat.Unlock) (int64, error) {
	res, err := s.exec(ctx, `INSERT INTO login_unlocks (username, address, created_at) VALUES (?, ?, ?)`, u.Username, u.Address, ms(u.CreatedAt))
	if err != nil {
		return 0, s.fail("insert unlock", err)
	}
	id, err := res.LastInsertId()
	return id, s.fail("insert unlock: read its id", err)
}

// UnlocksSince returns the unlocks stored at or after since, oldest first.
func (s *DB) UnlocksSince(ctx context.Context, since time.Time) ([]chat.Unlock, error) {
	rows, err := s.query(ctx, `SELECT id, username, address, created_at FROM login_unlocks WHERE created_at >= ? ORDER BY id`, ms(since))
	if err != nil {
		return nil, s.fail("unlocks since", err)
	}
	defer rows.Close()
	var out []chat.Unlock
	for rows.Next() {
		var (
			u  chat.Unlock
			at int64
		)
		if err := rows.Scan(&u.ID, &u.Username, &u.Address, &at); err != nil {
			return nil, s.fail("unlocks since: read", err)
		}
		u.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, u)
	}
	return out, s.fail("unlocks since", rows.Err())
}

// DeleteUnlocksBefore forgets unlocks older than before: every server has
// applied them long since.
func (s *DB) DeleteUnlocksBefore(ctx context.Context, before time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM login_unlocks WHERE created_at < ?`, ms(before))
	return s.fail("delete old unlocks", err)
}

// maxActionText is the longest target or detail kept in the audit trail
// (MySQL's column widths); longer text is cut at a character boundary.
const (
	maxActionTarget = 255
	maxActionDetail = 1024
)

// InsertAdminAction appends a line to the admin audit trail.
func (s *DB) InsertAdminAction(ctx context.Context, a chat.AdminAction) error {
	_, err := s.exec(ctx, `INSERT INTO admin_actions (created_at, actor, command, target, detail) VALUES (?, ?, ?, ?, ?)`,
		ms(a.CreatedAt), cut(a.Actor, 255), cut(a.Command, 64), cut(a.Target, maxActionTarget), cut(a.Detail, maxActionDetail))
	return s.fail("record admin action", err)
}

// AdminActions returns the newest limit lines of the audit trail, oldest
// first.
func (s *DB) AdminActions(ctx context.Context, limit int) ([]chat.AdminAction, error) {
	rows, err := s.query(ctx, `SELECT id, created_at, actor, command, target, detail FROM admin_actions ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, s.fail("admin actions", err)
	}
	defer rows.Close()
	var out []chat.AdminAction
	for rows.Next() {
		var (
			a  chat.AdminAction
			at int64
		)
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Command, &a.Target, &a.Detail); err != nil {
			return nil, s.fail("admin actions: read", err)
		}
		a.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("admin actions", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// cut shortens s to at most n bytes of valid UTF-8 (MySQL refuses invalid
// UTF-8, and a VARCHAR(n) counts characters, so bytes are the safe bound).
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// BackupTo writes a consistent copy of the SQLite database to path, which
// must not exist, while the database stays in use (VACUUM INTO reads one
// snapshot; writers go on). MySQL databases are backed up with mysqldump.
func (s *DB) BackupTo(ctx context.Context, path string) error {
	if s.dialect != SQLite {
		return s.fail("backup", chat.Errorf(chat.EInvalid, "Only an SQLite database can be copied by mapsim-chat; back MySQL up with mysqldump."))
	}
	_, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path)
	return s.fail("backup: vacuum into "+path, err)
}

// Dialect returns SQLite or MySQL.
func (s *DB) Dialect() string { return s.dialect }
