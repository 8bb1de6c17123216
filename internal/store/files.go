package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

const fileColumns = `id, chat_id, uploader_id, original_name, mime_type, size, sha256, key_version, storage_name,
	created_at, expired_at, thumb_name, thumb_size, thumb_mime_type, width, height`

func scanFile(row interface{ Scan(...any) error }) (chat.File, error) {
	var (
		f       chat.File
		created int64
		expired sql.NullInt64
		thumb   sql.NullString
	)
	err := row.Scan(&f.ID, &f.ChatID, &f.UploaderID, &f.Name, &f.MimeType, &f.Size, &f.SHA256, &f.KeyVersion, &f.StorageName,
		&created, &expired, &thumb, &f.ThumbSize, &f.ThumbMimeType, &f.Width, &f.Height)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.File{}, chat.Errorf(chat.ENotFound, "No such file.")
	}
	if err != nil {
		return chat.File{}, err
	}
	f.CreatedAt = time.UnixMilli(created).UTC()
	f.ExpiredAt = fromMS(expired)
	f.ThumbName = thumb.String
	return f, nil
}

// InsertFile stores a file's row.
func (s *DB) InsertFile(ctx context.Context, f chat.File) error {
	var thumb sql.NullString
	if f.ThumbName != "" {
		thumb = sql.NullString{String: f.ThumbName, Valid: true}
	}
	_, err := s.exec(ctx, `INSERT INTO files (`+fileColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)`,
		f.ID, f.ChatID, f.UploaderID, f.Name, f.MimeType, f.Size, f.SHA256, f.KeyVersion, f.StorageName,
		ms(f.CreatedAt), thumb, f.ThumbSize, f.ThumbMimeType, f.Width, f.Height)
	return s.fail("insert file", err)
}

// FileByID finds a file.
func (s *DB) FileByID(ctx context.Context, id []byte) (chat.File, error) {
	f, err := scanFile(s.queryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE id = ?`, id))
	return f, s.fail("file by id", err)
}

// FilesByIDs returns the files with the given ids; missing ones are left out.
func (s *DB) FilesByIDs(ctx context.Context, ids [][]byte) ([]chat.File, error) {
	var out []chat.File
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 100)]
		ids = ids[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		rows, err := s.db.QueryContext(ctx, `SELECT `+fileColumns+` FROM files WHERE id IN (?`+strings.Repeat(", ?", len(batch)-1)+`)`, args...)
		if err != nil {
			return nil, s.fail("files by ids", err)
		}
		for rows.Next() {
			f, err := scanFile(rows)
			if err != nil {
				rows.Close()
				return nil, s.fail("files by ids: read file", err)
			}
			out = append(out, f)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, s.fail("files by ids", err)
		}
	}
	return out, nil
}

// FileUsage sums the files not expired.
func (s *DB) FileUsage(ctx context.Context) (chat.FileUsage, error) {
	var u chat.FileUsage
	err := s.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size + thumb_size), 0) FROM files WHERE expired_at IS NULL`).Scan(&u.Files, &u.Bytes)
	return u, s.fail("file usage", err)
}

// OldestFiles returns up to limit files not expired, oldest first.
func (s *DB) OldestFiles(ctx context.Context, limit int) ([]chat.File, error) {
	rows, err := s.query(ctx, `SELECT `+fileColumns+` FROM files WHERE expired_at IS NULL ORDER BY created_at, id LIMIT ?`, limit)
	if err != nil {
		return nil, s.fail("oldest files", err)
	}
	defer rows.Close()
	var out []chat.File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, s.fail("oldest files: read file", err)
		}
		out = append(out, f)
	}
	return out, s.fail("oldest files", rows.Err())
}

// ExpireFile marks a file expired; false when it already was (or is gone).
func (s *DB) ExpireFile(ctx context.Context, id []byte, at time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE files SET expired_at = ? WHERE id = ? AND expired_at IS NULL`, ms(at), id)
	if err != nil {
		return false, s.fail("expire file", err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.fail("expire file: count rows", err)
}

// ClearData deletes every message, file row and key version and resets read
// markers, in one transaction.
func (s *DB) ClearData(ctx context.Context) (chat.Cleared, error) {
	var c chat.Cleared
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return c, s.fail("clear data: begin", err)
	}
	defer tx.Rollback()
	for _, step := range []struct {
		name  string
		query string
		count *int64
	}{
		{"delete messages", `DELETE FROM messages`, &c.Messages},
		{"delete files", `DELETE FROM files`, &c.Files},
		{"delete key versions", `DELETE FROM key_versions`, &c.KeyVersions},
		{"reset read markers", `UPDATE chat_members SET last_read_id = 0`, nil},
	} {
		res, err := tx.ExecContext(ctx, step.query)
		if err != nil {
			return chat.Cleared{}, s.fail("clear data: "+step.name, err)
		}
		if step.count != nil {
			if *step.count, err = res.RowsAffected(); err != nil {
				return chat.Cleared{}, s.fail("clear data: "+step.name, err)
			}
		}
	}
	return c, s.fail("clear data: commit", tx.Commit())
}
