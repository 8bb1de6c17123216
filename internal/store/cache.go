package store

import (
	"context"
	"slices"
	"sync"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// The chat cache keeps what every WebSocket connect, sync and send looks
// up: chats by name and by id, and the chats each user belongs to. A
// reconnect storm asks for these thousands of times a second, and on
// SQLite each query after a commit reads its pages back from the file (a
// connection drops its page cache whenever another one has written).
//
// It is exact, not time-bound: every change to a chat or to its members
// goes through this store (CreateChat, AddMembers, RemoveMember,
// RenameChat, CreateUser), and each forgets what it changed once its
// transaction has ended, before the caller learns the outcome. The admin
// commands that run beside a server change neither chats nor members.
// Sessions and users are not cached: `mapsim-chat admin reset-password`
// revokes sessions from another process, and that must take effect at once.
//
// A lookup that misses reads the database and keeps the answer only if
// nothing was forgotten meanwhile (gen), so a query that raced a change
// cannot put the old answer back after the change forgot it.
//
// Several nodes on one database each hear the others' changes through the
// Redis broker, which calls Forget before it delivers a change's events.
type chatCache struct {
	mu      sync.Mutex
	gen     uint64
	byID    map[int64]chat.Chat
	byName  map[string]int64
	members map[int64][]int64 // user id → the ids of the user's chats, ascending

	maxChats, maxUsers int // see maxCachedChats

	// closed is set when the store closes: from then on every lookup goes
	// to the database, which answers "unavailable", as it does for
	// everything else.
	closed bool
}

// The cache holds at most this many chats and this many users' chat lists;
// past that it starts over (memory stays bounded whatever the traffic).
const (
	maxCachedChats = 100_000
	maxCachedUsers = 200_000
)

func newChatCache() *chatCache {
	return &chatCache{byID: map[int64]chat.Chat{}, byName: map[string]int64{}, members: map[int64][]int64{},
		maxChats: maxCachedChats, maxUsers: maxCachedUsers}
}

// chat returns a cached chat by id, with the generation to put a missed
// one back at.
func (c *chatCache) chat(id int64) (chat.Chat, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.byID[id]
	return ch, ok && !c.closed, c.gen
}

// chatNamed is chat, by name.
func (c *chatCache) chatNamed(name string) (chat.Chat, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.byName[name]
	ch := c.byID[id]
	return ch, ok && !c.closed, c.gen
}

// putChat keeps a chat read from the database at generation gen.
func (c *chatCache) putChat(ch chat.Chat, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed {
		return
	}
	if len(c.byID) >= c.maxChats {
		clear(c.byID)
		clear(c.byName)
	}
	c.byID[ch.ID] = ch
	c.byName[ch.Name] = ch.ID
}

// chatIDs returns a user's cached chat ids (shared: do not modify).
func (c *chatCache) chatIDs(userID int64) ([]int64, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, ok := c.members[userID]
	return ids, ok && !c.closed, c.gen
}

func (c *chatCache) putChatIDs(userID int64, ids []int64, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed {
		return
	}
	if len(c.members) >= c.maxUsers {
		clear(c.members)
	}
	c.members[userID] = ids
}

// forget drops what a change touched: the chat lists of users and the
// chats themselves.
func (c *chatCache) forget(userIDs []int64, chatIDs ...int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, u := range userIDs {
		delete(c.members, u)
	}
	for _, id := range chatIDs {
		if ch, ok := c.byID[id]; ok {
			delete(c.byName, ch.Name)
			delete(c.byID, id)
		}
	}
}

// Forget drops what another node's change touched: the chat lists of
// users and the chats themselves.
func (s *DB) Forget(userIDs []int64, chatIDs ...int64) { s.cache.forget(userIDs, chatIDs...) }

// ForgetAll drops everything cached: after this node may have missed other
// nodes' changes (Redis was away).
func (s *DB) ForgetAll() {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byID)
	clear(c.byName)
	clear(c.members)
}

// close empties the cache and keeps it empty.
func (c *chatCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	clear(c.byID)
	clear(c.byName)
	clear(c.members)
}

// cachedChat returns a chat found in the cache by cached or, on a miss,
// read with load and kept.
func (s *DB) cachedChat(cached func() (chat.Chat, bool, uint64), load func() (chat.Chat, error)) (chat.Chat, error) {
	ch, ok, gen := cached()
	if ok {
		return ch, nil
	}
	ch, err := load()
	if err == nil {
		s.cache.putChat(ch, gen)
	}
	return ch, err
}

// UsersChatIDs is UserChatIDs for many users at once: those the cache
// holds are answered from it, the others read together, idBatch users to
// a query. Every user asked for is in the answer, one in no chat with an
// empty list. The lists are shared with the cache: do not modify them.
func (s *DB) UsersChatIDs(ctx context.Context, userIDs []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(userIDs))
	var missed []int64
	var gen uint64
	for i, u := range userIDs {
		ids, ok, g := s.cache.chatIDs(u)
		if i == 0 {
			// What is read below is kept only if nothing was forgotten
			// since the first lookup (see chatCache).
			gen = g
		}
		if ok {
			out[u] = ids
		} else if _, seen := out[u]; !seen {
			out[u] = nil // asked for twice, read once
			missed = append(missed, u)
		}
	}
	for start := 0; start < len(missed); start += idBatch {
		batch := missed[start:min(start+idBatch, len(missed))]
		rows, err := s.query(ctx, `SELECT user_id, chat_id FROM chat_members WHERE user_id IN (`+placeholders(len(batch))+
			`) ORDER BY user_id, chat_id`, appendIDs(make([]any, 0, len(batch)), batch)...)
		if err != nil {
			return nil, s.fail("users chat ids", err)
		}
		read := make(map[int64][]int64, len(batch))
		for rows.Next() {
			var u, id int64
			if err := rows.Scan(&u, &id); err != nil {
				rows.Close()
				return nil, s.fail("users chat ids", err)
			}
			read[u] = append(read[u], id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, s.fail("users chat ids", err)
		}
		for _, u := range batch {
			ids := slices.Clip(read[u])
			if ids == nil {
				ids = []int64{}
			}
			out[u] = ids
			s.cache.putChatIDs(u, ids, gen)
		}
	}
	return out, nil
}

// chatIDs returns the ids of a user's chats, ascending, through the cache.
// The slice is shared: callers must not modify it.
func (s *DB) chatIDs(ctx context.Context, userID int64) ([]int64, error) {
	ids, ok, gen := s.cache.chatIDs(userID)
	if ok {
		return ids, nil
	}
	rows, err := s.query(ctx, `SELECT chat_id FROM chat_members WHERE user_id = ? ORDER BY chat_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids = []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ids = slices.Clip(ids)
	s.cache.putChatIDs(userID, ids, gen)
	return ids, nil
}
