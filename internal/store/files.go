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
	created_at, expired_at, thumb_name, thumb_size, thumb_mime_type, width, height, thumb_pending`

func scanFile(row interface{ Scan(...any) error }) (chat.File, error) {
	var (
		f       chat.File
		created int64
		expired sql.NullInt64
		thumb   sql.NullString
	)
	err := row.Scan(&f.ID, &f.ChatID, &f.UploaderID, &f.Name, &f.MimeType, &f.Size, &f.SHA256, &f.KeyVersion, &f.StorageName,
		&created, &expired, &thumb, &f.ThumbSize, &f.ThumbMimeType, &f.Width, &f.Height, &f.ThumbPending)
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
	_, err := s.exec(ctx, `INSERT INTO files (`+fileColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.ChatID, f.UploaderID, f.Name, f.MimeType, f.Size, f.SHA256, f.KeyVersion, f.StorageName,
		ms(f.CreatedAt), thumb, f.ThumbSize, f.ThumbMimeType, f.Width, f.Height, f.ThumbPending)
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

// ExpireFile marks a file expired; false when it already was (or is gone).
func (s *DB) ExpireFile(ctx context.Context, id []byte, at time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE files SET expired_at = ? WHERE id = ? AND expired_at IS NULL`, ms(at), id)
	if err != nil {
		return false, s.fail("expire file", err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.fail("expire file: count rows", err)
}

// UserFileUsage sums one user's uploads not expired, thumbnails included:
// what the per-user quota counts.
func (s *DB) UserFileUsage(ctx context.Context, userID int64) (chat.FileUsage, error) {
	var u chat.FileUsage
	err := s.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size + thumb_size), 0) FROM files WHERE uploader_id = ? AND expired_at IS NULL`,
		userID).Scan(&u.Files, &u.Bytes)
	return u, s.fail("user file usage", err)
}

// FileUsageByUploader sums the files not expired per uploader, thumbnails
// included, so that the janitor can start with whoever stores the most.
func (s *DB) FileUsageByUploader(ctx context.Context) (map[int64]chat.FileUsage, error) {
	rows, err := s.query(ctx, `SELECT uploader_id, COUNT(*), COALESCE(SUM(size + thumb_size), 0) FROM files WHERE expired_at IS NULL GROUP BY uploader_id`)
	if err != nil {
		return nil, s.fail("file usage by uploader", err)
	}
	defer rows.Close()
	out := make(map[int64]chat.FileUsage)
	for rows.Next() {
		var (
			user int64
			u    chat.FileUsage
		)
		if err := rows.Scan(&user, &u.Files, &u.Bytes); err != nil {
			return nil, s.fail("file usage by uploader: read row", err)
		}
		out[user] = u
	}
	return out, s.fail("file usage by uploader", rows.Err())
}

// OldestFilesOf returns up to limit of one uploader's files not expired
// and created before a time, oldest first.
func (s *DB) OldestFilesOf(ctx context.Context, uploaderID int64, before time.Time, limit int) ([]chat.File, error) {
	return s.fileList(ctx, "oldest files of an uploader",
		`SELECT `+fileColumns+` FROM files WHERE uploader_id = ? AND expired_at IS NULL AND created_at < ? ORDER BY created_at, id LIMIT ?`,
		uploaderID, ms(before), limit)
}

// PendingThumbnails returns up to limit files not expired whose thumbnail
// is still to be made, oldest first.
func (s *DB) PendingThumbnails(ctx context.Context, limit int) ([]chat.File, error) {
	return s.fileList(ctx, "pending thumbnails",
		`SELECT `+fileColumns+` FROM files WHERE thumb_pending = 1 AND expired_at IS NULL ORDER BY created_at, id LIMIT ?`, limit)
}

// SetThumbnail records how a file's thumbnail turned out: its name, size
// and type (ThumbName "" when none could be made), and the file's type,
// which becomes application/octet-stream when the image did not decode. The
// file is no longer pending. It reports false, changing nothing, when the
// file has expired (or is gone) meanwhile.
func (s *DB) SetThumbnail(ctx context.Context, f chat.File) (bool, error) {
	var thumb sql.NullString
	if f.ThumbName != "" {
		thumb = sql.NullString{String: f.ThumbName, Valid: true}
	}
	res, err := s.exec(ctx, `UPDATE files SET thumb_name = ?, thumb_size = ?, thumb_mime_type = ?, mime_type = ?, thumb_pending = 0
		WHERE id = ? AND expired_at IS NULL`, thumb, f.ThumbSize, f.ThumbMimeType, f.MimeType, f.ID)
	if err != nil {
		return false, s.fail("set thumbnail", err)
	}
	n, err := res.RowsAffected()
	return n == 1, s.fail("set thumbnail: count rows", err)
}

// FilesByStorageNames returns the files, expired or not, stored under the
// given names; names no row has are left out.
func (s *DB) FilesByStorageNames(ctx context.Context, names []string) ([]chat.File, error) {
	var out []chat.File
	for len(names) > 0 {
		batch := names[:min(len(names), 100)]
		names = names[len(batch):]
		args := make([]any, len(batch))
		for i, n := range batch {
			args[i] = n
		}
		files, err := s.fileListUnprepared(ctx, "files by storage names",
			`SELECT `+fileColumns+` FROM files WHERE storage_name IN (?`+strings.Repeat(", ?", len(batch)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

// fileList runs a fixed query (prepared once) that returns files.
func (s *DB) fileList(ctx context.Context, op, query string, args ...any) ([]chat.File, error) {
	rows, err := s.query(ctx, query, args...)
	return s.readFiles(op, rows, err)
}

// fileListUnprepared runs a query whose text varies (an IN list) that
// returns files.
func (s *DB) fileListUnprepared(ctx context.Context, op, query string, args ...any) ([]chat.File, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	return s.readFiles(op, rows, err)
}

func (s *DB) readFiles(op string, rows *sql.Rows, err error) ([]chat.File, error) {
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []chat.File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, s.fail(op+": read file", err)
		}
		out = append(out, f)
	}
	return out, s.fail(op, rows.Err())
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
		// What end-to-end encryption stored sealed goes with the key
		// versions it was sealed under; every encrypted chat then needs a
		// new epoch, as its envelopes are gone.
		{"delete room-key envelopes", `DELETE FROM e2ee_envelopes`, nil},
		{"delete key backups", `DELETE FROM e2ee_backups`, nil},
		{"delete key backup items", `DELETE FROM e2ee_backup_items`, nil},
		{"mark encrypted chats changed", `UPDATE e2ee_chats SET changed = 1`, nil},
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
