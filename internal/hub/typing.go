package hub

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Typing indicators are kept per user and chat. A start is relayed to the
// chat's other members and holds for TypingTTL; a refresh extends it (and
// is relayed again at most once per typingRelayEvery, so members who
// connected later learn of it). The server sends the stop: when the user
// says so, sends a message, closes the connection that was typing, or lets
// TypingTTL pass without a refresh.

// typingRelayEvery is the least time between two relayed starts of one
// user in one chat.
const typingRelayEvery = time.Second

type typingKey struct{ chatID, userID int64 }

type typingState struct {
	until    time.Time
	relayed  time.Time
	conn     *Conn
	chatName string
	username string
}

type typingSet struct {
	mu     sync.Mutex
	states map[typingKey]*typingState
}

// startTyping records that c's user is typing in ch and relays it unless a
// start was relayed very recently.
func (h *Hub) startTyping(ctx context.Context, c *Conn, ch chat.Chat, now time.Time) {
	key := typingKey{ch.ID, c.id.UserID}
	h.typing.mu.Lock()
	st := h.typing.states[key]
	if st == nil {
		st = &typingState{chatName: ch.Name, username: c.id.Username}
		h.typing.states[key] = st
	}
	st.until, st.conn = now.Add(h.opt.TypingTTL), c
	relay := now.Sub(st.relayed) >= typingRelayEvery
	if relay {
		st.relayed = now
	}
	h.typing.mu.Unlock()
	if relay {
		h.relayTyping(ctx, key, ch.Name, c.id.Username, true)
	}
}

// stopTyping ends c's user's indicator in a chat, if there is one, and
// relays the stop.
func (h *Hub) stopTyping(ctx context.Context, chatID, userID int64) {
	key := typingKey{chatID, userID}
	h.typing.mu.Lock()
	st := h.typing.states[key]
	delete(h.typing.states, key)
	h.typing.mu.Unlock()
	if st != nil {
		h.relayTyping(ctx, key, st.chatName, st.username, false)
	}
}

// stopTypingOf ends every indicator started from connection c.
func (h *Hub) stopTypingOf(c *Conn) {
	h.endTyping(func(_ typingKey, st *typingState) bool { return st.conn == c })
}

// expireTyping ends the indicators that were not refreshed in time.
func (h *Hub) expireTyping(now time.Time) {
	h.endTyping(func(_ typingKey, st *typingState) bool { return !now.Before(st.until) })
}

func (h *Hub) endTyping(match func(typingKey, *typingState) bool) {
	type ended struct {
		key typingKey
		st  *typingState
	}
	var out []ended
	h.typing.mu.Lock()
	for key, st := range h.typing.states {
		if match(key, st) {
			out = append(out, ended{key, st})
			delete(h.typing.states, key)
		}
	}
	h.typing.mu.Unlock()
	for _, e := range out {
		h.relayTyping(context.Background(), e.key, e.st.chatName, e.st.username, false)
	}
}

func (h *Hub) relayTyping(ctx context.Context, key typingKey, chatName, username string, typing bool) {
	t := wire.Typing{Type: wire.TypeTyping, ChatID: key.chatID, ChatName: chatName, Username: username, Typing: typing}
	if typing {
		t.ExpiresIn = h.opt.TypingTTL.Seconds()
	}
	frame, _ := json.Marshal(t)
	if err := h.opt.Broker.Publish(ctx, chat.Event{ChatID: key.chatID, SkipUserID: key.userID, Frame: frame}); err != nil {
		h.log.Warn("publish typing", "chat_id", key.chatID, "err", err)
	}
}
