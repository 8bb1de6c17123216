package delivery

import (
	"context"
	"encoding/json"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// ReplayStore is what Replay needs of the store besides Store.
type ReplayStore interface {
	// NewestByChat returns the newest message id of every chat that has a
	// message after an id.
	NewestByChat(ctx context.Context, after int64) (map[int64]int64, error)
}

// Replay reads committed messages and changes back as the events they were
// published as, for a broker that fills what pub/sub lost (the Redis
// broker's broker.Source).
type Replay struct {
	s  *Service
	st ReplayStore
}

// NewReplay returns the replay of s's messages, with st for the newest ids.
func NewReplay(s *Service, st ReplayStore) *Replay { return &Replay{s: s, st: st} }

// After returns up to limit events of a chat after an id, oldest first,
// each frame encoded as the live one was (and as sync sends it).
func (r *Replay) After(ctx context.Context, chatID, after int64, limit int) ([]chat.Event, error) {
	c, err := r.s.store.ChatByID(ctx, chatID)
	if err != nil {
		return nil, err
	}
	msgs, err := r.s.After(ctx, c, after, limit)
	if err != nil {
		return nil, err
	}
	events := make([]chat.Event, len(msgs))
	prev := after
	for i, m := range msgs {
		frame, err := json.Marshal(wire.FromMessage(m))
		if err != nil {
			return nil, err
		}
		events[i] = chat.Event{ChatID: chatID, MessageID: m.ID, Prev: prev, Frame: frame}
		prev = m.ID
	}
	return events, nil
}

// NewestByChat returns the newest message id of every chat with a message
// after an id.
func (r *Replay) NewestByChat(ctx context.Context, after int64) (map[int64]int64, error) {
	return r.st.NewestByChat(ctx, after)
}
