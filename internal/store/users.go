package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

const userColumns = `id, username, email, password_hash, role, created_at, disabled_at, deleted_at, display_name, avatar_at`

func scanUser(row interface{ Scan(...any) error }) (chat.User, error) {
	var (
		u        chat.User
		email    sql.NullString
		created  int64
		disabled sql.NullInt64
		deleted  sql.NullInt64
		avatar   sql.NullInt64
	)
	if err := row.Scan(&u.ID, &u.Username, &email, &u.PasswordHash, &u.Role, &created, &disabled, &deleted, &u.DisplayName, &avatar); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return chat.User{}, chat.Errorf(chat.ENotFound, "No such user.")
		}
		return chat.User{}, err
	}
	u.Email = email.String
	u.CreatedAt = time.UnixMilli(created).UTC()
	u.DisabledAt = fromMS(disabled)
	u.DeletedAt = fromMS(deleted)
	u.AvatarAt = fromMS(avatar)
	return u, nil
}

// CreateUser inserts u, joins it to the global chat and consumes the invite,
// all in one transaction.
func (s *DB) CreateUser(ctx context.Context, u *chat.User, invite []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("create user: begin", err)
	}
	defer tx.Rollback()

	now := ms(u.CreatedAt)
	if invite != nil {
		var expires int64
		var used sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT expires_at, used_at FROM invites WHERE code_hash = ?`, invite).Scan(&expires, &used)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (used.Valid || expires <= now)) {
			return s.fail("create user", chat.Errorf(chat.EInvalid, "That invite code is not valid: it may have been used or have expired."))
		}
		if err != nil {
			return s.fail("create user: read invite", err)
		}
	}
	var email sql.NullString
	if u.Email != "" {
		email = sql.NullString{String: u.Email, Valid: true}
	}
	key := chat.UsernameKey(u.Username)
	res, err := tx.ExecContext(ctx, `INSERT INTO users (username, username_key, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		u.Username, key, email, u.PasswordHash, u.Role, now)
	if isUnique(err) {
		var n int
		if qerr := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE username_key = ?`, key).Scan(&n); qerr == nil && n == 0 && email.Valid {
			return s.fail("create user", chat.Errorf(chat.EConflict, "That email address is already registered."))
		}
		return s.fail("create user", chat.Errorf(chat.EConflict, "That username is taken."))
	}
	if err != nil {
		return s.fail("create user: insert user", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return s.fail("create user: read new user's id", err)
	}
	defer s.cache.forget([]int64{id}) // after the Commit below, as deferred calls run last
	// A new user starts with the global chat's history read.
	if _, err := tx.ExecContext(ctx, `INSERT INTO chat_members (chat_id, user_id, role, joined_at, last_read_id)
		SELECT c.id, ?, 'member', ?,
			COALESCE((SELECT m.id FROM messages m WHERE m.chat_id = c.id ORDER BY m.id DESC LIMIT 1), 0)
		FROM chats c WHERE c.kind = 'global'`, id, now); err != nil {
		return s.fail("create user: join global chat", err)
	}
	if invite != nil {
		res, err := tx.ExecContext(ctx, `UPDATE invites SET used_at = ?, used_by = ? WHERE code_hash = ? AND used_at IS NULL`, now, id, invite)
		if err != nil {
			return s.fail("create user: use invite", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return s.fail("create user", chat.Errorf(chat.EInvalid, "That invite code is not valid: it may have been used or have expired."))
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail("create user: commit", err)
	}
	u.ID = id
	return nil
}

// UserByUsername finds a user by chat.UsernameKey, so ignoring case and
// width ("Ａlice" finds alice) and the few lookalike letters the key folds.
// The key column compares byte for byte on both databases (MySQL's is
// utf8mb4_bin), so no collation adds matches of its own: "alice " and
// "alíce" are not alice, and cannot reach her account past her login
// throttle.
func (s *DB) UserByUsername(ctx context.Context, username string) (chat.User, error) {
	key := chat.UsernameKey(username)
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username_key = ?`, key))
	if err == nil && chat.UsernameKey(u.Username) != key {
		// MariaDB's collations, utf8mb4_bin too, ignore trailing spaces.
		err = chat.Errorf(chat.ENotFound, "No such user.")
	}
	if err != nil {
		return chat.User{}, s.fail("user by username", err)
	}
	return u, nil
}

// UsersByUsername finds the users of the given usernames (by their keys, as
// UserByUsername does); names with no user are left out.
func (s *DB) UsersByUsername(ctx context.Context, usernames []string) ([]chat.User, error) {
	if len(usernames) == 0 {
		return nil, nil
	}
	keys := make([]any, len(usernames))
	for i, n := range usernames {
		keys[i] = chat.UsernameKey(n)
	}
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users WHERE username_key IN (?`+strings.Repeat(", ?", len(keys)-1)+`)`, keys...)
	if err != nil {
		return nil, s.fail("users by username", err)
	}
	defer rows.Close()
	var out []chat.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.fail("users by username: read user", err)
		}
		if slices.Contains(keys, any(chat.UsernameKey(u.Username))) { // see UserByUsername
			out = append(out, u)
		}
	}
	return out, s.fail("users by username", rows.Err())
}

// SetDisplayName sets a user's display name ("" for none); ENotFound when
// there is no such user.
func (s *DB) SetDisplayName(ctx context.Context, userID int64, name string) error {
	res, err := s.exec(ctx, `UPDATE users SET display_name = ? WHERE id = ?`, name, userID)
	if err != nil {
		return s.fail("set display name", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.fail("set display name", chat.Errorf(chat.ENotFound, "No such user."))
	}
	return nil
}

// SetAvatar stores a user's avatar, replacing any before it, and records
// its time on the user.
func (s *DB) SetAvatar(ctx context.Context, a chat.Avatar) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("set avatar: begin", err)
	}
	defer tx.Rollback()
	at := ms(a.UpdatedAt)
	res, err := tx.ExecContext(ctx, `UPDATE users SET avatar_at = ? WHERE id = ?`, at, a.UserID)
	if err != nil {
		return s.fail("set avatar: mark user", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.fail("set avatar", chat.Errorf(chat.ENotFound, "No such user."))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM avatars WHERE user_id = ?`, a.UserID); err != nil {
		return s.fail("set avatar: remove old", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO avatars (user_id, image, mime_type, updated_at) VALUES (?, ?, ?, ?)`,
		a.UserID, a.Image, a.MimeType, at); err != nil {
		return s.fail("set avatar: insert", err)
	}
	return s.fail("set avatar: commit", tx.Commit())
}

// DeleteAvatar removes a user's avatar; removing none is not an error.
func (s *DB) DeleteAvatar(ctx context.Context, userID int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("delete avatar: begin", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET avatar_at = NULL WHERE id = ?`, userID); err != nil {
		return s.fail("delete avatar: mark user", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM avatars WHERE user_id = ?`, userID); err != nil {
		return s.fail("delete avatar", err)
	}
	return s.fail("delete avatar: commit", tx.Commit())
}

// Avatar returns a user's avatar; ENotFound when they have none.
func (s *DB) Avatar(ctx context.Context, userID int64) (chat.Avatar, error) {
	a := chat.Avatar{UserID: userID}
	var at int64
	err := s.queryRow(ctx, `SELECT image, mime_type, updated_at FROM avatars WHERE user_id = ?`, userID).Scan(&a.Image, &a.MimeType, &at)
	if errors.Is(err, sql.ErrNoRows) {
		err = chat.Errorf(chat.ENotFound, "No avatar.")
	}
	if err != nil {
		return chat.Avatar{}, s.fail("avatar", err)
	}
	a.UpdatedAt = time.UnixMilli(at).UTC()
	return a, nil
}

// SetNotify sets a member's notification level in a chat; ENotFound when
// the user is not a member.
func (s *DB) SetNotify(ctx context.Context, chatID, userID int64, level string) error {
	res, err := s.exec(ctx, `UPDATE chat_members SET notify = ? WHERE chat_id = ? AND user_id = ?`, level, chatID, userID)
	if err != nil {
		return s.fail("set notify", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// MySQL counts only changed rows: setting the level a member
		// already has changes none. Tell that apart from no membership.
		var one int
		err := s.queryRow(ctx, `SELECT 1 FROM chat_members WHERE chat_id = ? AND user_id = ?`, chatID, userID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return s.fail("set notify", chat.Errorf(chat.ENotFound, "No such chat."))
		}
		return s.fail("set notify: check membership", err)
	}
	return nil
}

// UserByID finds a user by id.
func (s *DB) UserByID(ctx context.Context, id int64) (chat.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, s.fail("user by id", err)
}

// SetPassword replaces the hash and revokes every live session of the user.
func (s *DB) SetPassword(ctx context.Context, userID int64, hash string, at time.Time) error {
	_, err := s.ChangePassword(ctx, userID, hash, 0, at)
	return err
}

// SetDisabled disables a user at the given time, revoking every session of
// theirs in the same transaction, or, with the zero time, enables them
// again (they log in anew). ENotFound when there is no such user.
func (s *DB) SetDisabled(ctx context.Context, userID int64, at time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("set disabled: begin", err)
	}
	defer tx.Rollback()
	ok, err := exists(ctx, tx, "users", userID)
	if err != nil {
		return s.fail("set disabled: find user", err)
	}
	if !ok {
		return s.fail("set disabled", chat.Errorf(chat.ENotFound, "No such user."))
	}
	if at.IsZero() {
		var deleted sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT deleted_at FROM users WHERE id = ?`, userID).Scan(&deleted); err != nil {
			return s.fail("set disabled: read user", err)
		}
		if deleted.Valid {
			return s.fail("set disabled", chat.Errorf(chat.EConflict, "That account was deleted; it cannot be enabled again."))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET disabled_at = NULL WHERE id = ?`, userID); err != nil {
			return s.fail("set disabled: enable user", err)
		}
		return s.fail("set disabled: commit", tx.Commit())
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL`, ms(at), userID); err != nil {
		return s.fail("set disabled: disable user", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, ms(at), userID); err != nil {
		return s.fail("set disabled: revoke sessions", err)
	}
	return s.fail("set disabled: commit", tx.Commit())
}

// SetRole changes a user's role.
func (s *DB) SetRole(ctx context.Context, userID int64, role string) error {
	_, err := s.exec(ctx, `UPDATE users SET role = ? WHERE id = ?`, role, userID)
	return s.fail("set role", err)
}

// CreateSession inserts a session.
func (s *DB) CreateSession(ctx context.Context, sess *chat.Session) error {
	res, err := s.exec(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at, user_agent, ip) VALUES (?, ?, ?, ?, ?, ?)`,
		sess.UserID, sess.TokenHash, ms(sess.CreatedAt), ms(sess.ExpiresAt), clipUserAgent(sess.UserAgent), sess.IP)
	if err != nil {
		return s.fail("create session", err)
	}
	sess.ID, err = res.LastInsertId()
	return s.fail("create session: read its id", err)
}

// clipUserAgent makes a User-Agent fit its column: MySQL refuses invalid
// UTF-8, and a cut at 255 bytes can split a character.
func clipUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	if len(ua) > 255 {
		ua = ua[:255]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}

const sessionSelect = `SELECT id, user_id, token_hash, created_at, expires_at, revoked_at, user_agent, ip, last_used_at FROM sessions `

// SessionByTokenHash finds a session by the hash of its token's jti.
func (s *DB) SessionByTokenHash(ctx context.Context, tokenHash []byte) (chat.Session, error) {
	sess, err := scanSession(s.queryRow(ctx, sessionSelect+`WHERE token_hash = ?`, tokenHash))
	return sess, s.fail("session by token", err)
}

// SessionByID finds a session by id.
func (s *DB) SessionByID(ctx context.Context, id int64) (chat.Session, error) {
	sess, err := scanSession(s.queryRow(ctx, sessionSelect+`WHERE id = ?`, id))
	return sess, s.fail("session by id", err)
}

// accessSelect reads what an access check needs of a session and its user,
// in one query: checking a token or a WebSocket ticket needs both, and a
// reconnect storm makes that check thousands of times a second. (Not the
// password hash: it has no business in every request.)
const accessSelect = `SELECT s.id, s.user_id, u.username, u.role, s.expires_at, s.revoked_at, u.disabled_at,
	COALESCE(s.last_used_at, s.created_at) FROM sessions s JOIN users u ON u.id = s.user_id `

// AccessByTokenHash reads the session whose token's jti hashes to
// tokenHash, with its user; ENotFound when either is missing.
func (s *DB) AccessByTokenHash(ctx context.Context, tokenHash []byte) (chat.Access, error) {
	a, err := scanAccess(s.queryRow(ctx, accessSelect+`WHERE s.token_hash = ?`, tokenHash))
	return a, s.fail("access by token", err)
}

// AccessBySessionID reads a session by id, with its user; ENotFound when
// either is missing.
func (s *DB) AccessBySessionID(ctx context.Context, id int64) (chat.Access, error) {
	a, err := scanAccess(s.queryRow(ctx, accessSelect+`WHERE s.id = ?`, id))
	return a, s.fail("access by session id", err)
}

func scanAccess(row rowScanner) (chat.Access, error) {
	var (
		a                 chat.Access
		expires           int64
		revoked, disabled sql.NullInt64
		lastUsed          int64
	)
	err := row.Scan(&a.SessionID, &a.UserID, &a.Username, &a.Role, &expires, &revoked, &disabled, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Access{}, chat.Errorf(chat.ENotFound, "No such session.")
	}
	if err != nil {
		return chat.Access{}, err
	}
	a.ExpiresAt = time.UnixMilli(expires).UTC()
	a.RevokedAt = fromMS(revoked)
	a.DisabledAt = fromMS(disabled)
	a.LastUsedAt = time.UnixMilli(lastUsed).UTC()
	return a, nil
}

func scanSession(row rowScanner) (chat.Session, error) {
	var (
		sess              chat.Session
		created, expires  int64
		revoked, lastUsed sql.NullInt64
	)
	err := row.Scan(&sess.ID, &sess.UserID, &sess.TokenHash, &created, &expires, &revoked, &sess.UserAgent, &sess.IP, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Session{}, chat.Errorf(chat.ENotFound, "No such session.")
	}
	if err != nil {
		return chat.Session{}, err
	}
	sess.CreatedAt = time.UnixMilli(created).UTC()
	sess.ExpiresAt = time.UnixMilli(expires).UTC()
	sess.RevokedAt = fromMS(revoked)
	sess.LastUsedAt = fromMS(lastUsed)
	if sess.LastUsedAt.IsZero() {
		sess.LastUsedAt = sess.CreatedAt
	}
	return sess, nil
}

// RevokeSession marks a session revoked.
func (s *DB) RevokeSession(ctx context.Context, id int64, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(at), id)
	return s.fail("revoke session", err)
}

// RevokedSince returns the sessions revoked, and the users disabled, at or
// after since: what every running server closes the WebSockets of. A
// disabled user comes back with SessionID 0 (all their sessions).
func (s *DB) RevokedSince(ctx context.Context, since time.Time) ([]chat.Revocation, error) {
	rows, err := s.query(ctx, `SELECT id, user_id FROM sessions WHERE revoked_at >= ?
		UNION ALL SELECT 0, id FROM users WHERE disabled_at >= ?`, ms(since), ms(since))
	if err != nil {
		return nil, s.fail("revoked since", err)
	}
	defer rows.Close()
	var out []chat.Revocation
	for rows.Next() {
		var r chat.Revocation
		if err := rows.Scan(&r.SessionID, &r.UserID); err != nil {
			return nil, s.fail("revoked since: scan", err)
		}
		out = append(out, r)
	}
	return out, s.fail("revoked since", rows.Err())
}

// DeleteExpiredSessions removes sessions that expired before the given time.
func (s *DB) DeleteExpiredSessions(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, ms(before))
	if err != nil {
		return 0, s.fail("delete expired sessions", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// CreateInvite stores an invite.
func (s *DB) CreateInvite(ctx context.Context, inv chat.Invite) error {
	_, err := s.exec(ctx, `INSERT INTO invites (code_hash, created_at, expires_at) VALUES (?, ?, ?)`,
		inv.CodeHash, ms(inv.CreatedAt), ms(inv.ExpiresAt))
	return s.fail("create invite", err)
}

// likeEscaper escapes LIKE's wildcards, and its own escape character, in
// text that must match literally. '!' rather than '\' is the escape
// character because MySQL reads a backslash in SQL text as an escape of its
// own, so ESCAPE '\' would have to be spelled differently per dialect.
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// SearchUsers returns up to limit active users whose username starts with
// prefix, compared as chat.UsernameKey compares names (so "Ａl" finds
// alice, and "علي" finds علی), or whose display name starts with it,
// ignoring case as the database does. LIKE does the finding and can use the
// key's index; the key column is binary on MySQL, so its collation adds no
// accent-blind matches ("alí" does not find alice).
func (s *DB) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users
		WHERE disabled_at IS NULL AND (username_key LIKE ? ESCAPE '!' OR display_name LIKE ? ESCAPE '!')
		ORDER BY username_key LIMIT ?`,
		likeEscaper.Replace(chat.UsernameKey(prefix))+"%", likeEscaper.Replace(prefix)+"%", limit)
	if err != nil {
		return nil, s.fail("search users", err)
	}
	defer rows.Close()
	var out []chat.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.fail("search users: read user", err)
		}
		out = append(out, u)
	}
	return out, s.fail("search users", rows.Err())
}
