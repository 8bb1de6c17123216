package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// KeyVersions returns every stored key version, oldest first.
func (s *DB) KeyVersions(ctx context.Context) ([]chat.KeyVersion, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, wrapped_key, created_at FROM key_versions ORDER BY id`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []chat.KeyVersion
	for rows.Next() {
		var kv chat.KeyVersion
		var created int64
		if err := rows.Scan(&kv.ID, &kv.WrappedKey, &created); err != nil {
			return nil, wrap(err)
		}
		kv.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, kv)
	}
	return out, wrap(rows.Err())
}

// InsertKeyVersion stores a wrapped key and returns its id.
func (s *DB) InsertKeyVersion(ctx context.Context, wrapped []byte, at time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO key_versions (wrapped_key, created_at) VALUES (?, ?)`, wrapped, ms(at))
	if err != nil {
		return 0, wrap(err)
	}
	id, err := res.LastInsertId()
	return id, wrap(err)
}

// ReplaceWrappedKeys rewrites the wrapped keys of existing versions in one
// transaction; a version that does not exist fails the whole change.
func (s *DB) ReplaceWrappedKeys(ctx context.Context, versions []chat.KeyVersion) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback()
	for _, kv := range versions {
		res, err := tx.ExecContext(ctx, `UPDATE key_versions SET wrapped_key = ? WHERE id = ?`, kv.WrappedKey, kv.ID)
		if err != nil {
			return wrap(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			ok, err := exists(ctx, tx, "key_versions", kv.ID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("key version %d does not exist", kv.ID)
			}
		}
	}
	return wrap(tx.Commit())
}

const chatColumns = `id, name, kind, title, e2ee, created_by, created_at`

func scanChat(row interface{ Scan(...any) error }) (chat.Chat, error) {
	var (
		c       chat.Chat
		by      sql.NullInt64
		created int64
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &c.Title, &c.E2EE, &by, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return chat.Chat{}, chat.Errorf(chat.ENotFound, "No such chat.")
		}
		return chat.Chat{}, wrap(err)
	}
	c.CreatedBy = by.Int64
	c.CreatedAt = time.UnixMilli(created).UTC()
	return c, nil
}

// ChatByName finds a chat by name.
func (s *DB) ChatByName(ctx context.Context, name string) (chat.Chat, error) {
	return scanChat(s.db.QueryRowContext(ctx, `SELECT `+chatColumns+` FROM chats WHERE name = ?`, name))
}

// ChatByID finds a chat by id.
func (s *DB) ChatByID(ctx context.Context, id int64) (chat.Chat, error) {
	return scanChat(s.db.QueryRowContext(ctx, `SELECT `+chatColumns+` FROM chats WHERE id = ?`, id))
}

// IsMember reports whether the user belongs to the chat.
func (s *DB) IsMember(ctx context.Context, chatID, userID int64) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM chat_members WHERE chat_id = ? AND user_id = ?`, chatID, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, wrap(err)
}

// UserChatIDs returns the ids of the chats the user belongs to.
func (s *DB) UserChatIDs(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT chat_id FROM chat_members WHERE user_id = ? ORDER BY chat_id`, userID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(err)
		}
		out = append(out, id)
	}
	return out, wrap(rows.Err())
}

// InsertMessages commits a group of messages in one transaction, in order.
// A (user, client id) pair already stored, before or earlier in the same
// group, returns the stored id with Created false.
func (s *DB) InsertMessages(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error) {
	insert := `INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id) DO NOTHING`
	if s.dialect == MySQL {
		// LAST_INSERT_ID(id) makes a duplicate report the stored id with 0 rows affected.
		insert = `INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)`
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return nil, wrap(err)
	}
	defer stmt.Close()
	out := make([]chat.Inserted, len(msgs))
	for i, m := range msgs {
		res, err := stmt.ExecContext(ctx, m.ChatID, m.UserID, m.Kind, m.KeyVersion, m.Body, m.ClientID, ms(m.CreatedAt))
		if err != nil {
			return nil, wrap(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, wrap(err)
		}
		if n == 1 {
			id, err := res.LastInsertId()
			if err != nil {
				return nil, wrap(err)
			}
			out[i] = chat.Inserted{ID: id, ChatID: m.ChatID, Created: true, CreatedAt: m.CreatedAt}
			continue
		}
		var created int64
		if err := tx.QueryRowContext(ctx, `SELECT id, chat_id, created_at FROM messages WHERE user_id = ? AND client_id = ?`, m.UserID, m.ClientID).
			Scan(&out[i].ID, &out[i].ChatID, &created); err != nil {
			return nil, wrap(err)
		}
		out[i].CreatedAt = time.UnixMilli(created).UTC()
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

const messageSelect = `SELECT m.id, m.chat_id, c.name, m.user_id, u.username, m.kind, m.key_version, m.body,
	m.client_id, m.created_at, m.edited_at, m.deleted_at
	FROM messages m JOIN users u ON u.id = m.user_id JOIN chats c ON c.id = m.chat_id `

func scanMessages(rows *sql.Rows, capHint int) ([]chat.Message, error) {
	defer rows.Close()
	out := make([]chat.Message, 0, capHint)
	for rows.Next() {
		var (
			m               chat.Message
			created         int64
			edited, deleted sql.NullInt64
		)
		if err := rows.Scan(&m.ID, &m.ChatID, &m.ChatName, &m.UserID, &m.Username, &m.Kind, &m.KeyVersion, &m.Body,
			&m.ClientID, &created, &edited, &deleted); err != nil {
			return nil, wrap(err)
		}
		m.CreatedAt = time.UnixMilli(created).UTC()
		m.EditedAt = fromMS(edited)
		m.DeletedAt = fromMS(deleted)
		out = append(out, m)
	}
	return out, wrap(rows.Err())
}

// MessagesBefore returns a keyset page of a chat's history, oldest first.
func (s *DB) MessagesBefore(ctx context.Context, chatID, before int64, limit int) ([]chat.Message, bool, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.db.QueryContext(ctx, messageSelect+`WHERE m.chat_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?`, chatID, before, limit+1)
	if err != nil {
		return nil, false, wrap(err)
	}
	msgs, err := scanMessages(rows, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// MessagesAfter returns up to limit messages with id > after, oldest first.
func (s *DB) MessagesAfter(ctx context.Context, chatID, after int64, limit int) ([]chat.Message, error) {
	rows, err := s.db.QueryContext(ctx, messageSelect+`WHERE m.chat_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`, chatID, after, limit)
	if err != nil {
		return nil, wrap(err)
	}
	return scanMessages(rows, limit)
}
