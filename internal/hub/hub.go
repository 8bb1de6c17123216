// Package hub holds the WebSocket connections: it subscribes each to the
// chats of its user, fans committed messages out to them, and keeps
// presence. It never blocks on a slow client: each connection has a bounded
// send queue and its own writer; a connection whose queue is full is closed
// and catches up through sync when it reconnects.
//
// Locks, in the order they may be taken (a lock lower in the list is never
// held while one higher up is taken):
//
//	Hub.presenceMu  serialises presence announcements (hub.go)
//	index.mu        every map of the hub (index.go)
//	Conn.mu         a connection's per-chat streams (conn.go)
//	Conn.qmu        a connection's send queue (conn.go)
//	batchConn.mu    a socket's writes (socket.go)
//
// Three more are leaves, held only around their own fields and never while
// another lock is taken: typingSet.mu (typing.go), flushClock.mu
// (socket.go), and the message rate limiter's (ratelimit.Keyed).
package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Messages is what the hub needs of the message path.
type Messages interface {
	// SendAsync checks and queues a message; then is called once with the
	// outcome after it has committed and been published (see
	// delivery.Service.SendAsync).
	SendAsync(ctx context.Context, id chat.Identity, req delivery.SendRequest, then func(delivery.Sent, error)) error
	// Change edits or deletes a message and returns once it has committed.
	Change(ctx context.Context, id chat.Identity, req delivery.ChangeRequest) (delivery.Changed, error)
	// After returns up to limit messages and change events after an id,
	// oldest first.
	After(ctx context.Context, c chat.Chat, after int64, limit int) ([]chat.Message, error)
}

// Chats is what the hub needs of the chats service.
type Chats interface {
	// Resolve finds a chat by id or name that the user is a member of.
	Resolve(ctx context.Context, id chat.Identity, ref string) (chat.Chat, error)
	// ChatIDs returns the ids of every chat the user belongs to.
	ChatIDs(ctx context.Context, userID int64) ([]int64, error)
	// UsersChatIDs is ChatIDs for many users in as few reads as it can;
	// every user asked for is in the answer, and the lists are not to be
	// modified.
	UsersChatIDs(ctx context.Context, userIDs []int64) (map[int64][]int64, error)
	// MarkRead moves the user's read marker and tells their connections.
	MarkRead(ctx context.Context, id chat.Identity, c chat.Chat, messageID int64) (int64, error)
}

// Options configure a Hub. Every number comes from config, which holds the
// defaults; New takes them as they are.
type Options struct {
	Messages Messages
	Chats    Chats
	Broker   chat.Broker
	Log      *slog.Logger
	// Limits are enforced here (message size, message and frame rates)
	// and told to each client in its hello frame.
	Limits chat.Limits
	// SharedLimits, when set, keeps each user's message rate in Redis, one
	// budget across the nodes (see ratelimit.Shared).
	SharedLimits *ratelimit.Shared
	// QueueSize is how many frames may wait for one connection.
	QueueSize int
	// PingInterval and PongTimeout: ping every PingInterval, and close a
	// connection that has sent nothing, not even a pong, for PongTimeout.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds one write to a connection.
	WriteTimeout time.Duration
	// FrameTimeout bounds the work of one frame from a client (and each
	// page of a sync): a database that does not answer in that time gets
	// the client an "unavailable" error frame.
	FrameTimeout time.Duration
	// SyncPage is the page size of sync replies.
	SyncPage int
	// TypingTTL is how long a typing start holds without a refresh.
	TypingTTL time.Duration
	// PresenceLimit is the most connections a chat may have (on this node,
	// plus the users online in it on the other nodes) and still carry
	// presence. Announcing each arrival and departure to
	// everyone in a chat costs frames in proportion to its size, so a big
	// room (a large community's global) would make every connect cost O(n)
	// and a reconnect storm O(n²); such a room carries none, and presence
	// comes from the direct chats and groups people share.
	PresenceLimit int
	// PresenceGrace is how long a user whose last connection closed stays
	// online to everyone else (0: none). A client that comes back within it
	// (a network blip, a phone changing networks) announces nothing: not
	// offline, then online again to every member of its chats.
	PresenceGrace time.Duration
	// WriteDelay is the least time between two writes to one connection
	// while the hub is busy (0: never wait): frames that arrive sooner wait
	// and go out together. It costs a busy connection at most that much
	// latency and saves a system call and a wake-up at both ends for every
	// frame it coalesces. The hub is busy while it makes more than
	// BusyWrites writes a second; below that every frame goes out at once,
	// so a client that sends and waits for each ack is not slowed.
	WriteDelay time.Duration
	BusyWrites int
	// Metrics count what the hub does; nil fields count nothing.
	Metrics Metrics
	// Presence, when set, shares this node's online users with the other
	// nodes of an installation (nil on one node); the others' come back
	// through Hub.RemotePresence.
	Presence Presence
}

// Presence is where the hub tells the other nodes who is online here.
type Presence interface {
	// Online records that a user came online on this node (true: a first
	// connection) or went offline (false: the last closed and the grace
	// ended). It must not block: it is called with the index locked, so
	// that the changes of one user are told in the order they happened.
	Online(userID int64, username string, online bool)
}

// PresenceChange is a user coming online or going offline on the other
// nodes taken together.
type PresenceChange struct {
	UserID   int64
	Username string
	Online   bool
}

// check reports the first option that would make the hub misbehave: a
// wiring mistake, not a user's.
func (o Options) check() error {
	switch {
	case o.Messages == nil || o.Chats == nil || o.Broker == nil || o.Log == nil:
		return fmt.Errorf("Messages, Chats, Broker and Log are required")
	case o.QueueSize <= 0 || o.SyncPage <= 0 || o.PresenceLimit <= 0 || o.BusyWrites <= 0:
		return fmt.Errorf("QueueSize, SyncPage, PresenceLimit and BusyWrites must be positive")
	case o.PingInterval <= 0 || o.PongTimeout <= 0 || o.WriteTimeout <= 0 || o.FrameTimeout <= 0 || o.TypingTTL <= 0:
		return fmt.Errorf("PingInterval, PongTimeout, WriteTimeout, FrameTimeout and TypingTTL must be positive")
	case o.PresenceGrace < 0 || o.WriteDelay < 0:
		return fmt.Errorf("PresenceGrace and WriteDelay must not be negative")
	case o.Limits.MaxMessageBytes <= 0 || o.Limits.MessageRate <= 0 || o.Limits.MessageBurst <= 0 ||
		o.Limits.FrameRate <= 0 || o.Limits.FrameBurst <= 0:
		return fmt.Errorf("every rate limit and MaxMessageBytes must be positive")
	}
	return nil
}

// Hub is the set of live connections on this node.
type Hub struct {
	opt Options
	log *slog.Logger
	m   Metrics // Options.Metrics with every field set

	idx index
	wg  sync.WaitGroup // one per registered connection, until its reader ends
	// presenceMu serialises presence announcements, so the last one a
	// client gets is the truth (see announce).
	presenceMu sync.Mutex

	messages *ratelimit.Keyed // per user
	typing   typingSet
	flush    flushClock

	frames, writes atomic.Int64 // see Stats
	busy           atomic.Bool  // more than BusyWrites writes a second lately
}

// New returns a Hub subscribed to the broker. It panics on options that
// would make it misbehave (a wiring mistake).
func New(o Options) *Hub {
	if err := o.check(); err != nil {
		panic("hub: " + err.Error())
	}
	h := &Hub{
		opt: o, log: o.Log, m: o.Metrics.withDefaults(),
		idx:      newIndex(o.PresenceLimit),
		messages: ratelimit.NewKeyed(o.Limits.MessageRate, o.Limits.MessageBurst),
		typing:   typingSet{states: make(map[typingKey]*typingState)},
		flush:    flushClock{every: o.WriteDelay},
	}
	if o.SharedLimits != nil {
		h.messages.Share(o.SharedLimits, "messages")
	}
	o.Broker.Subscribe(h.deliver)
	return h
}

// Run does the hub's housekeeping until ctx ends: connections are pinged,
// and dropped when they stop answering or their session expires; typing
// indicators that were not refreshed are stopped, users whose grace ended
// announced offline, and idle rate-limit buckets forgotten. (One loop for
// every connection, rather than a timer and a goroutine each.)
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(h.opt.TypingTTL / 10)
	defer tick.Stop()
	alive := time.NewTicker(min(max(h.opt.PingInterval/5, 10*time.Millisecond), time.Second))
	defer alive.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	const loadEvery = 100 * time.Millisecond
	load := time.NewTicker(loadEvery)
	defer load.Stop()
	lastWrites := h.writes.Load()
	var conns []*Conn
	for {
		select {
		case <-ctx.Done():
			return
		case <-load.C:
			w := h.writes.Load()
			h.busy.Store((w-lastWrites)*int64(time.Second/loadEvery) > int64(h.opt.BusyWrites))
			lastWrites = w
		case now := <-tick.C:
			h.expireTyping(now)
			h.expireAway(now)
		case now := <-alive.C:
			conns = h.idx.conns(conns[:0])
			for _, c := range conns {
				c.checkAlive(now)
			}
			clear(conns)
		case now := <-sweep.C:
			h.messages.Sweep(now)
		}
	}
}

// deliver queues an event's frame on every connection subscribed to its
// chat, or, for an event addressed to users, on those users' connections,
// first changing their subscription when it says so.
func (h *Hub) deliver(ev chat.Event) {
	if len(ev.UserIDs) > 0 {
		h.deliverToUsers(ev)
		return
	}
	h.idx.mu.RLock()
	subs := h.idx.byChat[ev.ChatID]
	targets := make([]*Conn, 0, len(subs))
	for c := range subs {
		if ev.SkipUserID == 0 || c.id.UserID != ev.SkipUserID {
			targets = append(targets, c)
		}
	}
	h.idx.mu.RUnlock()
	if ev.MessageID == 0 {
		for _, c := range targets {
			c.enqueue(ev.Frame)
		}
		return
	}
	delivered := 0
	for _, c := range targets {
		if c.deliverMessage(ev.ChatID, ev.MessageID, ev.Frame) {
			delivered++
		}
	}
	// One add for the whole fan-out, not one per connection.
	if delivered > 0 {
		h.m.Delivered.Add(float64(delivered))
	}
}

func (h *Hub) deliverToUsers(ev chat.Event) {
	var targets []*Conn
	h.idx.mu.Lock()
	for _, uid := range ev.UserIDs {
		if ev.Membership != "" {
			h.idx.membershipRemoteLocked(uid, ev.ChatID, ev.Membership)
		}
		for c := range h.idx.byUser[uid] {
			switch ev.Membership {
			case chat.MembershipJoin:
				h.idx.subscribeLocked(c, ev.ChatID, h.opt.PresenceLimit)
			case chat.MembershipLeave:
				h.idx.unsubscribeLocked(c, ev.ChatID)
			}
			targets = append(targets, c)
		}
	}
	h.idx.mu.Unlock()
	for _, c := range targets {
		if ev.Membership == chat.MembershipLeave {
			c.forget(ev.ChatID)
		}
		c.enqueue(ev.Frame)
	}
}

// register adds a connection and its subscriptions. It returns the chats
// to announce the user online in: all of them when the user has just come
// online, none when another connection was open, and, for a user back
// within the presence grace, only chats they were not in before (to the
// others, they never left).
func (h *Hub) register(c *Conn, chatIDs []int64) (announceIn []int64, ok bool) {
	ix := &h.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closing {
		return nil, false
	}
	ix.subs[c] = make(map[int64]struct{}, len(chatIDs))
	for _, id := range chatIDs {
		ix.subscribeLocked(c, id, h.opt.PresenceLimit)
	}
	uid := c.id.UserID
	conns := ix.byUser[uid]
	if conns == nil {
		conns = make(map[*Conn]struct{})
		ix.byUser[uid] = conns
		ix.names[uid] = c.id.Username
		if a := ix.away[uid]; a != nil {
			ix.dropAwayLocked(uid, a)
			for _, id := range chatIDs {
				if !slices.Contains(a.chatIDs, id) {
					announceIn = append(announceIn, id)
				}
			}
		} else {
			announceIn = chatIDs
			if h.opt.Presence != nil {
				h.opt.Presence.Online(uid, c.id.Username, true)
			}
		}
	}
	conns[c] = struct{}{}
	h.wg.Add(1)
	return announceIn, true
}

// unregister removes a connection; it reports whether its user went offline
// and which chats the user was in.
func (h *Hub) unregister(c *Conn) (wentOffline bool, chatIDs []int64) {
	ix := &h.idx
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for id := range ix.subs[c] {
		chatIDs = append(chatIDs, id)
		ix.unsubscribeLocked(c, id)
	}
	delete(ix.subs, c)
	uid := c.id.UserID
	if conns := ix.byUser[uid]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(ix.byUser, uid)
			if h.opt.PresenceGrace > 0 && !ix.closing && !c.revoked.Load() {
				// Online to the others until the grace ends.
				ix.goAwayLocked(uid, chatIDs, time.Now().Add(h.opt.PresenceGrace))
			} else {
				delete(ix.names, uid)
				wentOffline = true
				if h.opt.Presence != nil {
					h.opt.Presence.Online(uid, c.id.Username, false)
				}
			}
		}
	}
	return wentOffline, chatIDs
}

// expireAway announces offline the users whose grace has ended.
func (h *Hub) expireAway(now time.Time) {
	type gone struct {
		uid int64
		a   *awayUser
	}
	var ended []gone
	ix := &h.idx
	ix.mu.Lock()
	for uid, a := range ix.away {
		if !now.Before(a.until) {
			ix.dropAwayLocked(uid, a)
			delete(ix.names, uid)
			ended = append(ended, gone{uid, a})
			if h.opt.Presence != nil {
				h.opt.Presence.Online(uid, a.name, false)
			}
		}
	}
	ix.mu.Unlock()
	for _, g := range ended {
		h.announce(g.uid, g.a.name, g.a.chatIDs, true)
	}
}

// subscribe adds a connection to a chat's live stream, if it is still
// registered, and returns once this node hears the chat.
func (h *Hub) subscribe(ctx context.Context, c *Conn, chatID int64) {
	h.idx.mu.Lock()
	h.idx.subscribeLocked(c, chatID, h.opt.PresenceLimit)
	h.idx.mu.Unlock()
	h.awaitChats(ctx, []int64{chatID})
}

func (h *Hub) unsubscribe(c *Conn, chatID int64) {
	h.idx.mu.Lock()
	defer h.idx.mu.Unlock()
	h.idx.unsubscribeLocked(c, chatID)
}

// IsOnline reports whether the user has a connection on this node, or had
// one less than the presence grace ago.
func (h *Hub) IsOnline(userID int64) bool {
	h.idx.mu.RLock()
	defer h.idx.mu.RUnlock()
	return h.idx.onlineLocked(userID)
}

// OnlineIn returns the usernames of the users online in any of the given
// chats, sorted: who is online among the people a user shares chats with.
func (h *Hub) OnlineIn(chatIDs []int64) []string {
	ix := &h.idx
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	seen := make(map[int64]struct{})
	for _, id := range chatIDs {
		for c := range ix.byChat[id] {
			seen[c.id.UserID] = struct{}{}
		}
		for uid := range ix.awayIn[id] {
			seen[uid] = struct{}{}
		}
		for uid := range ix.remoteIn[id] {
			seen[uid] = struct{}{}
		}
	}
	return ix.namesOfLocked(seen)
}

// Stats are the hub's counters.
type Stats struct {
	Connections int `json:"connections"`
	Users       int `json:"users_online"`
	Chats       int `json:"chats_live"`
	// Frames and Writes count the frames written to connections and the
	// coalesced writes that carried them, since the start.
	Frames int64 `json:"frames_written"`
	Writes int64 `json:"writes"`
}

// Stats counts the connections, the users online (those with a connection
// and those in the presence grace) and the chats with at least one
// subscribed connection.
func (h *Hub) Stats() Stats {
	ix := &h.idx
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return Stats{
		Connections: len(ix.subs), Users: len(ix.byUser) + len(ix.away), Chats: len(ix.byChat),
		Frames: h.frames.Load(), Writes: h.writes.Load(),
	}
}

// announce tells every connection that shares one of chatIDs with the user
// whether the user is online now; chats over Options.PresenceLimit are
// left out. Announcements are serialised and each reads the current state,
// so the last one a client gets is the truth even when one tab closes as
// another opens. A change on this node (local) is not announced while
// another node holds the user: to everyone, the user has not changed.
func (h *Hub) announce(userID int64, username string, chatIDs []int64, local bool) {
	h.presenceMu.Lock()
	defer h.presenceMu.Unlock()
	ix := &h.idx
	ix.mu.RLock()
	if local && ix.remote[userID] != nil {
		ix.mu.RUnlock()
		return
	}
	online := ix.onlineLocked(userID)
	frame, _ := json.Marshal(wire.Presence{Type: wire.TypePresence, Username: username, Online: online})
	seen := make(map[*Conn]struct{})
	now := time.Now()
	for _, id := range chatIDs {
		if !ix.carriesPresenceLocked(id, h.opt.PresenceLimit, now) {
			continue
		}
		for c := range ix.byChat[id] {
			if c.id.UserID != userID {
				seen[c] = struct{}{}
			}
		}
	}
	ix.mu.RUnlock()
	for c := range seen {
		c.enqueue(frame)
	}
}

// onlineFor lists the online users who share a chat that carries presence
// (see Options.PresenceLimit) with c's user, including that user, sorted.
func (h *Hub) onlineFor(c *Conn) []string {
	ix := &h.idx
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	seen := map[int64]struct{}{c.id.UserID: {}}
	now := time.Now()
	for id := range ix.subs[c] {
		if !ix.carriesPresenceLocked(id, h.opt.PresenceLimit, now) {
			continue
		}
		for other := range ix.byChat[id] {
			seen[other.id.UserID] = struct{}{}
		}
		for uid := range ix.awayIn[id] {
			seen[uid] = struct{}{}
		}
		for uid := range ix.remoteIn[id] {
			seen[uid] = struct{}{}
		}
	}
	return ix.namesOfLocked(seen)
}

// LocalOnline returns the users online on this node (with a connection or
// in their grace), for Options.Presence to write in full.
func (h *Hub) LocalOnline() map[int64]string {
	h.idx.mu.RLock()
	defer h.idx.mu.RUnlock()
	out := make(map[int64]string, len(h.idx.names))
	for uid, name := range h.idx.names {
		out[uid] = name
	}
	return out
}

// RemotePresence takes the other nodes' changes (see Options.Presence): a
// user online elsewhere is online here too, in the chats the database says
// they are in (kept up to date by membership events), and announced when
// that changes what everyone here sees. The chats of every user coming
// online are read together: after a node dies its thousands of users come
// online on the others in a few batches.
func (h *Hub) RemotePresence(ctx context.Context, changes []PresenceChange) {
	var online []int64
	for _, ch := range changes {
		if ch.Online {
			online = append(online, ch.UserID)
		}
	}
	var chatsOf map[int64][]int64
	if len(online) > 0 {
		cctx, cancel := context.WithTimeout(ctx, h.opt.FrameTimeout)
		var err error
		chatsOf, err = h.opt.Chats.UsersChatIDs(cctx, online)
		cancel()
		if err != nil {
			// Online, in no chat known here: shown where each user's next
			// membership event or reconnect puts them.
			h.log.Warn("presence: load the chats of users online on another node", "users", len(online), "err", err)
		}
	}
	for _, ch := range changes {
		var chatIDs []int64
		if ch.Online {
			chatIDs = chatsOf[ch.UserID]
		}
		ix := &h.idx
		ix.mu.Lock()
		before := ix.onlineLocked(ch.UserID)
		r := ix.remote[ch.UserID]
		if r != nil {
			ix.dropRemoteLocked(ch.UserID, r)
		}
		if ch.Online {
			ix.addRemoteLocked(ch.UserID, ch.Username, chatIDs)
		} else if r != nil {
			chatIDs = r.chatIDs
		}
		after := ix.onlineLocked(ch.UserID)
		ix.mu.Unlock()
		if before != after {
			h.announce(ch.UserID, ch.Username, chatIDs, false)
		}
	}
}

// Recheck closes the connections subscribed to a chat their user is no
// longer a member of, as the database says: after this node may have
// missed a membership change made on another (Redis was away). They
// reconnect and start from what the database holds.
func (h *Hub) Recheck(ctx context.Context) {
	h.idx.mu.RLock()
	users := make([]int64, 0, len(h.idx.byUser))
	for uid := range h.idx.byUser {
		users = append(users, uid)
	}
	h.idx.mu.RUnlock()
	for start := 0; start < len(users); start += recheckBatch {
		batch := users[start:min(start+recheckBatch, len(users))]
		cctx, cancel := context.WithTimeout(ctx, h.opt.FrameTimeout)
		chatsOf, err := h.opt.Chats.UsersChatIDs(cctx, batch)
		cancel()
		if err != nil {
			h.log.Warn("recheck the chats of connected users", "users", len(batch), "err", err)
			continue
		}
		var stale []*Conn
		h.idx.mu.RLock()
		for _, uid := range batch {
			ids := chatsOf[uid]
			for c := range h.idx.byUser[uid] {
				for id := range h.idx.subs[c] {
					if _, member := slices.BinarySearch(ids, id); !member {
						stale = append(stale, c)
						break
					}
				}
			}
		}
		h.idx.mu.RUnlock()
		for _, c := range stale {
			c.close(websocket.StatusServiceRestart, "your chats changed; reconnect")
		}
	}
}

// recheckBatch is how many users' chats Recheck reads under one frame
// timeout.
const recheckBatch = 2000

// CloseSession closes every connection opened in a session (after logout).
func (h *Hub) CloseSession(sessionID int64) {
	var victims []*Conn
	for _, c := range h.idx.conns(nil) {
		if c.id.SessionID == sessionID {
			victims = append(victims, c)
		}
	}
	for _, c := range victims {
		c.close(websocket.StatusPolicyViolation, "logged out")
	}
}

// CloseRevoked closes the connections of revoked sessions, and every
// connection of a disabled user (SessionID 0).
func (h *Hub) CloseRevoked(revoked []chat.Revocation) {
	type victim struct {
		c   *Conn
		why string
	}
	var victims []victim
	h.idx.mu.RLock()
	for _, r := range revoked {
		for c := range h.idx.byUser[r.UserID] {
			switch {
			case r.SessionID == 0:
				victims = append(victims, victim{c, "account disabled"})
			case c.id.SessionID == r.SessionID:
				victims = append(victims, victim{c, "logged out"})
			}
		}
	}
	h.idx.mu.RUnlock()
	for _, v := range victims {
		v.c.revoked.Store(true)
		v.c.close(websocket.StatusPolicyViolation, v.why)
	}
}

// Shutdown refuses new connections, tells every connection to reconnect
// (close 1012, service restart) and waits for them to finish or ctx to end.
func (h *Hub) Shutdown(ctx context.Context) {
	h.idx.mu.Lock()
	h.idx.closing = true
	h.idx.mu.Unlock()
	conns := h.idx.conns(nil)
	for _, c := range conns {
		c.close(websocket.StatusServiceRestart, "server restarting")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.ws.CloseNow()
		}
	}
}
