package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// CreateRefreshSession inserts a browser's session and the first refresh
// token of its family, in one transaction, and sets sess.ID.
func (s *DB) CreateRefreshSession(ctx context.Context, sess *chat.Session, refreshHash []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("create refresh session: begin", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at, user_agent, ip, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		sess.UserID, sess.TokenHash, ms(sess.CreatedAt), ms(sess.ExpiresAt), clipUserAgent(sess.UserAgent), sess.IP, ms(sess.CreatedAt))
	if err != nil {
		return s.fail("create refresh session: insert session", err)
	}
	if sess.ID, err = res.LastInsertId(); err != nil {
		return s.fail("create refresh session: read its id", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)`,
		refreshHash, sess.ID, ms(sess.CreatedAt)); err != nil {
		return s.fail("create refresh session: insert refresh token", err)
	}
	return s.fail("create refresh session: commit", tx.Commit())
}

// RefreshSession trades a refresh token, in one transaction: a token not
// yet spent is spent, its successor stored and the session's expiry moved
// to r.ExpiresAt; a token spent within r.Grace whose successor is still
// unspent succeeds without a successor; any other spent token revokes its
// session (the family).
// A session that is revoked or expired, or whose user is disabled, changes
// nothing (RefreshEnded). ENotFound for a token that was never issued (or
// whose session is gone).
func (s *DB) RefreshSession(ctx context.Context, r chat.Refresh) (chat.Access, chat.RefreshOutcome, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: begin", err)
	}
	defer tx.Rollback()
	var (
		sessionID int64
		used      sql.NullInt64
		successor []byte
	)
	err = tx.QueryRowContext(ctx, `SELECT session_id, used_at, successor FROM refresh_tokens WHERE token_hash = ?`+s.forUpdate(), r.TokenHash).Scan(&sessionID, &used, &successor)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.Access{}, chat.RefreshEnded, s.fail("refresh session", chat.Errorf(chat.ENotFound, "No such refresh token."))
	}
	if err != nil {
		return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: read token", err)
	}
	a, err := scanAccess(tx.QueryRowContext(ctx, accessSelect+`WHERE s.id = ?`+s.forUpdate(), sessionID))
	if err != nil {
		return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: read session", err)
	}
	if !a.RevokedAt.IsZero() || !r.At.Before(a.ExpiresAt) || !a.DisabledAt.IsZero() {
		return a, chat.RefreshEnded, nil
	}
	at := ms(r.At)
	switch {
	case !used.Valid:
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = ?, successor = ? WHERE token_hash = ?`, at, r.NextHash, r.TokenHash); err != nil {
			return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: spend token", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)`, r.NextHash, sessionID, at); err != nil {
			return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: insert successor", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET expires_at = ?, last_used_at = ? WHERE id = ?`, ms(r.ExpiresAt), at, sessionID); err != nil {
			return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: extend session", err)
		}
		a.ExpiresAt, a.LastUsedAt = r.ExpiresAt.UTC(), r.At.UTC()
		return a, chat.RefreshRotated, s.fail("refresh session: commit", tx.Commit())
	case at-used.Int64 <= r.Grace.Milliseconds():
		var next sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT used_at FROM refresh_tokens WHERE token_hash = ?`, successor).Scan(&next)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: read successor", err)
		}
		if err == nil && !next.Valid {
			return a, chat.RefreshGrace, nil
		}
		fallthrough // the family has moved on since: a replay
	default:
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, at, sessionID); err != nil {
			return chat.Access{}, chat.RefreshEnded, s.fail("refresh session: revoke family", err)
		}
		a.RevokedAt = r.At.UTC()
		return a, chat.RefreshReplayed, s.fail("refresh session: commit", tx.Commit())
	}
}

// DeleteSpentRefreshTokens removes refresh tokens spent before the given
// time; a replay of one is then refused as unknown, without revoking its
// family. It returns how many it removed.
func (s *DB) DeleteSpentRefreshTokens(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM refresh_tokens WHERE used_at < ?`, ms(before))
	if err != nil {
		return 0, s.fail("delete spent refresh tokens", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// TouchSession records that a session was used at the given time.
func (s *DB) TouchSession(ctx context.Context, id int64, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE sessions SET last_used_at = ? WHERE id = ?`, ms(at), id)
	return s.fail("touch session", err)
}

// RevokeUserSession revokes one live session of a user. ENotFound when the
// user has no such live session: another user's session is answered as one
// that does not exist.
func (s *DB) RevokeUserSession(ctx context.Context, userID, sessionID int64, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`,
		ms(at), sessionID, userID, ms(at))
	if err != nil {
		return s.fail("revoke user session", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return s.fail("revoke user session", chat.Errorf(chat.ENotFound, "No such session."))
	}
	return nil
}

// RevokeOtherSessions revokes every live session of a user but keep, and
// returns the ids it revoked.
func (s *DB) RevokeOtherSessions(ctx context.Context, userID, keep int64, at time.Time) ([]int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("revoke other sessions: begin", err)
	}
	defer tx.Rollback()
	ids, err := s.revokeSessionsTx(ctx, tx, userID, keep, at)
	if err != nil {
		return nil, s.fail("revoke other sessions", err)
	}
	return ids, s.fail("revoke other sessions: commit", tx.Commit())
}

// ChangePassword replaces a user's password hash and revokes every live
// session of theirs but keep (0: every one), in one transaction, and
// returns the ids it revoked. ENotFound when there is no such user.
func (s *DB) ChangePassword(ctx context.Context, userID int64, hash string, keep int64, at time.Time) ([]int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("set password: begin", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
	if err != nil {
		return nil, s.fail("set password: update user", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		ok, err := exists(ctx, tx, "users", userID)
		if err != nil {
			return nil, s.fail("set password: find user", err)
		}
		if !ok {
			return nil, s.fail("set password", chat.Errorf(chat.ENotFound, "No such user."))
		}
	}
	ids, err := s.revokeSessionsTx(ctx, tx, userID, keep, at)
	if err != nil {
		return nil, s.fail("set password", err)
	}
	return ids, s.fail("set password: commit", tx.Commit())
}

// revokeSessionsTx revokes a user's unrevoked sessions but keep, and
// returns their ids.
func (s *DB) revokeSessionsTx(ctx context.Context, tx *sql.Tx, userID, keep int64, at time.Time) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM sessions WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`+s.forUpdate(), userID, keep)
	if err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find sessions: scan: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find sessions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`, ms(at), userID, keep); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	return ids, nil
}
