package hub

import "context"

// What the Redis broker asks of the hub (see internal/broker): which chats
// have connections here, and how far each has been delivered; and what the
// hub asks of it: to hear chats that have just got a connection here.

// chatAwaiter is a broker that hears a chat's events on a node only once
// the node asks (broker.Redis.Await).
type chatAwaiter interface {
	Await(ctx context.Context, chatIDs []int64)
}

// awaitChats returns once this node hears the chats' events, so that
// whatever commits after the caller goes on — a hello, a sync's read —
// reaches the connection. With the in-process broker it returns at once.
func (h *Hub) awaitChats(ctx context.Context, chatIDs []int64) {
	if a, ok := h.opt.Broker.(chatAwaiter); ok {
		a.Await(ctx, chatIDs)
	}
}

// LiveChats returns the chats that have at least one connection on this
// node subscribed to them, in no order.
func (h *Hub) LiveChats() []int64 {
	h.idx.mu.RLock()
	defer h.idx.mu.RUnlock()
	ids := make([]int64, 0, len(h.idx.byChat))
	for id := range h.idx.byChat {
		ids = append(ids, id)
	}
	return ids
}

// Live reports whether a chat has a connection on this node.
func (h *Hub) Live(chatID int64) bool {
	h.idx.mu.RLock()
	defer h.idx.mu.RUnlock()
	return len(h.idx.byChat[chatID]) > 0
}

// Floor returns the lowest message id of a chat that every connection
// subscribed to it here has been sent (live or by sync), and whether any
// connection knows: one still syncing reads the store itself when it
// finishes, and one that has been sent nothing of the chat yet knows no
// id. The broker starts a chat it has not tracked from here, so that it
// fills from the store whatever any of them may have missed.
func (h *Hub) Floor(chatID int64) (floor int64, ok bool) {
	h.idx.mu.RLock()
	conns := make([]*Conn, 0, len(h.idx.byChat[chatID]))
	for c := range h.idx.byChat[chatID] {
		conns = append(conns, c)
	}
	h.idx.mu.RUnlock()
	for _, c := range conns {
		c.mu.Lock()
		st := c.streams[chatID]
		// A resuming connection that has synced knows where it is even
		// at 0 (the chat was empty); any other has been sent something.
		known := st != nil && !st.syncing && (st.lastSent > 0 || c.resume)
		if known && (!ok || st.lastSent < floor) {
			floor, ok = st.lastSent, true
		}
		c.mu.Unlock()
	}
	return floor, ok
}
