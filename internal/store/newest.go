package store

import (
	"context"
	"fmt"
)

// NewestByChat returns the newest message id of every chat that has a
// message after an id: what a node that lost its Redis connection must
// fill. It reads the ids after the given one only (the primary key's
// range), so it costs what was written since.
func (s *DB) NewestByChat(ctx context.Context, after int64) (map[int64]int64, error) {
	rows, err := s.query(ctx, `SELECT chat_id, MAX(id) FROM messages WHERE id > ? GROUP BY chat_id`, after)
	if err != nil {
		return nil, s.fail("newest by chat", err)
	}
	defer rows.Close()
	out := make(map[int64]int64)
	for rows.Next() {
		var chatID, id int64
		if err := rows.Scan(&chatID, &id); err != nil {
			return nil, s.fail("newest by chat", fmt.Errorf("scan: %w", err))
		}
		out[chatID] = id
	}
	return out, s.fail("newest by chat", rows.Err())
}
