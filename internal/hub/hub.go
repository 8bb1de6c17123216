// Package hub holds the WebSocket connections: it subscribes each to the
// chats of its user, fans committed messages out to them, and keeps
// presence. It never blocks on a slow client: each connection has a bounded
// send queue and its own writer; a connection whose queue is full is closed
// and catches up through sync when it reconnects.
package hub

import (
	"context"
	"encoding/json"
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

// Options configure a Hub.
type Options struct {
	Delivery *delivery.Service
	Store    chat.Store
	Broker   chat.Broker
	Log      *slog.Logger
	// QueueSize is how many frames may wait for one connection (default 256).
	QueueSize int
	// PingInterval and PongTimeout: ping every PingInterval, and close a
	// connection that has sent nothing, not even a pong, for PongTimeout.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds one frame's write (default 10 s).
	WriteTimeout time.Duration
	// SyncPage is the page size of sync replies (default 200).
	SyncPage int
	// MessageRate and MessageBurst limit how fast one user sends messages,
	// edits and deletes (default 10/s, bursts of 20); FrameRate and
	// FrameBurst limit frames of any type per connection (default 40/s,
	// bursts of 80).
	MessageRate  float64
	MessageBurst int
	FrameRate    float64
	FrameBurst   int
	// TypingTTL is how long a typing start holds without a refresh
	// (default 5 s).
	TypingTTL time.Duration
	// PresenceLimit is the most connections a chat may have on this node
	// and still carry presence (default 500). Announcing each arrival and
	// departure to everyone in a chat costs frames in proportion to its
	// size, so a big room (a large community's global) would make every
	// connect cost O(n) and a reconnect storm O(n²); such a room carries
	// none, and presence comes from the direct chats and groups people
	// share.
	PresenceLimit int
	// PresenceGrace is how long a user whose last connection closed stays
	// online to everyone else (default 10 s; negative for none). A client
	// that comes back within it (a network blip, a phone changing networks)
	// announces nothing: not offline, then online again to every member of
	// its chats.
	PresenceGrace time.Duration
	// WriteDelay is the least time between two writes to one connection
	// while the hub is busy (default 5 ms; negative for none): frames that
	// arrive sooner wait and go out together. It costs a busy connection at
	// most that much latency and saves a system call and a wake-up at both
	// ends for every frame it coalesces. The hub is busy while it makes
	// more than BusyWrites writes a second (default 10,000, about a tenth
	// of a core of system calls); below that every frame goes out at once,
	// so a client that sends and waits for each ack is not slowed.
	WriteDelay time.Duration
	BusyWrites int
}

// Hub is the set of live connections on this node.
type Hub struct {
	opt Options
	log *slog.Logger

	mu    sync.RWMutex
	chats map[int64]map[*Conn]struct{} // chat id → subscribed connections
	users map[int64]map[*Conn]struct{} // user id → connections
	names map[int64]string             // user id → username, for users online
	all   map[*Conn]struct{}
	wg    sync.WaitGroup
	// presenceMu serialises presence announcements.
	presenceMu sync.Mutex
	// closing is set by Shutdown: new connections are refused.
	closing bool

	// large holds, for each chat that has had more than PresenceLimit
	// connections, when it last had them (guarded by mu). Such a chat
	// carries no presence until it has stayed under the limit for
	// largeForgetAfter: in a reconnect storm a big room empties for a
	// moment, and must not start announcing every returning member to
	// everyone there.
	large map[int64]time.Time

	// away holds the users whose last connection closed less than
	// PresenceGrace ago, and awayIn the chats they were in (both guarded by
	// mu). To everyone else they are online: names keeps their names, and
	// Run announces them offline when the grace ends.
	away   map[int64]*awayUser
	awayIn map[int64]map[int64]struct{} // chat id → away user ids

	messages *ratelimit.Keyed // per user
	typing   typingSet
	flush    flushClock

	frames, writes atomic.Int64 // see Stats
	busy           atomic.Bool  // more than BusyWrites writes a second lately
}

// awayUser is a user in the grace after their last connection closed.
type awayUser struct {
	name    string
	chatIDs []int64 // the chats the last connection was in
	until   time.Time
}

// New returns a Hub subscribed to the broker.
func New(o Options) *Hub {
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = 60 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.SyncPage <= 0 {
		o.SyncPage = 200
	}
	if o.MessageRate <= 0 {
		o.MessageRate, o.MessageBurst = 10, 20
	}
	if o.FrameRate <= 0 {
		o.FrameRate, o.FrameBurst = 40, 80
	}
	if o.TypingTTL <= 0 {
		o.TypingTTL = 5 * time.Second
	}
	if o.PresenceLimit <= 0 {
		o.PresenceLimit = 500
	}
	if o.WriteDelay == 0 {
		o.WriteDelay = 5 * time.Millisecond
	}
	if o.PresenceGrace == 0 {
		o.PresenceGrace = 10 * time.Second
	}
	if o.BusyWrites <= 0 {
		o.BusyWrites = 10000
	}
	h := &Hub{
		opt: o, log: o.Log,
		chats:  make(map[int64]map[*Conn]struct{}),
		users:  make(map[int64]map[*Conn]struct{}),
		names:  make(map[int64]string),
		all:    make(map[*Conn]struct{}),
		large:  make(map[int64]time.Time),
		away:   make(map[int64]*awayUser),
		awayIn: make(map[int64]map[int64]struct{}),

		messages: ratelimit.NewKeyed(o.MessageRate, o.MessageBurst),
		typing:   typingSet{states: make(map[typingKey]*typingState)},
		flush:    flushClock{every: o.WriteDelay},
	}
	o.Broker.Subscribe(h.deliver)
	return h
}

// Run does the hub's housekeeping until ctx ends: connections are pinged,
// and dropped when they stop answering or their session expires; typing
// indicators that were not refreshed are stopped, and idle rate-limit
// buckets forgotten. (One loop for every connection, rather than a timer
// and a goroutine each.)
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
			h.mu.RLock()
			conns = conns[:0]
			for c := range h.all {
				conns = append(conns, c)
			}
			h.mu.RUnlock()
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
	h.mu.RLock()
	subs := h.chats[ev.ChatID]
	targets := make([]*Conn, 0, len(subs))
	for c := range subs {
		if ev.SkipUserID == 0 || c.id.UserID != ev.SkipUserID {
			targets = append(targets, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range targets {
		if ev.MessageID == 0 {
			c.enqueue(ev.Frame)
		} else {
			c.deliverMessage(ev.ChatID, ev.MessageID, ev.Frame)
		}
	}
}

func (h *Hub) deliverToUsers(ev chat.Event) {
	var targets []*Conn
	h.mu.Lock()
	for _, uid := range ev.UserIDs {
		for c := range h.users[uid] {
			switch ev.Membership {
			case chat.MembershipJoin:
				h.subscribeLocked(c, ev.ChatID)
			case chat.MembershipLeave:
				h.unsubscribeLocked(c, ev.ChatID)
			}
			targets = append(targets, c)
		}
	}
	h.mu.Unlock()
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
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, false
	}
	h.all[c] = struct{}{}
	for _, id := range chatIDs {
		h.subscribeLocked(c, id)
	}
	uid := c.id.UserID
	conns := h.users[uid]
	if conns == nil {
		conns = make(map[*Conn]struct{})
		h.users[uid] = conns
		h.names[uid] = c.id.Username
		if a := h.away[uid]; a != nil {
			h.dropAwayLocked(uid, a)
			for _, id := range chatIDs {
				if !slices.Contains(a.chatIDs, id) {
					announceIn = append(announceIn, id)
				}
			}
		} else {
			announceIn = chatIDs
		}
	}
	conns[c] = struct{}{}
	h.wg.Add(1)
	return announceIn, true
}

// goAwayLocked starts a user's grace (h.mu held for writing): expireAway
// announces them offline when it ends, unless register ends it first.
func (h *Hub) goAwayLocked(uid int64, chatIDs []int64) {
	h.away[uid] = &awayUser{name: h.names[uid], chatIDs: chatIDs, until: time.Now().Add(h.opt.PresenceGrace)}
	for _, id := range chatIDs {
		users := h.awayIn[id]
		if users == nil {
			users = make(map[int64]struct{})
			h.awayIn[id] = users
		}
		users[uid] = struct{}{}
	}
}

// dropAwayLocked ends a user's grace (h.mu held for writing).
func (h *Hub) dropAwayLocked(uid int64, a *awayUser) {
	delete(h.away, uid)
	for _, id := range a.chatIDs {
		if users := h.awayIn[id]; users != nil {
			delete(users, uid)
			if len(users) == 0 {
				delete(h.awayIn, id)
			}
		}
	}
}

// expireAway announces offline the users whose grace has ended.
func (h *Hub) expireAway(now time.Time) {
	type gone struct {
		uid int64
		a   *awayUser
	}
	var ended []gone
	h.mu.Lock()
	for uid, a := range h.away {
		if !now.Before(a.until) {
			h.dropAwayLocked(uid, a)
			delete(h.names, uid)
			ended = append(ended, gone{uid, a})
		}
	}
	h.mu.Unlock()
	for _, g := range ended {
		h.announce(g.uid, g.a.name, g.a.chatIDs)
	}
}

func (h *Hub) subscribeLocked(c *Conn, chatID int64) {
	subs := h.chats[chatID]
	if subs == nil {
		subs = make(map[*Conn]struct{})
		h.chats[chatID] = subs
	}
	subs[c] = struct{}{}
	c.subscribed[chatID] = struct{}{}
	if len(subs) > h.opt.PresenceLimit {
		h.large[chatID] = time.Now()
	}
}

// largeForgetAfter is how long a chat that had more than PresenceLimit
// connections stays without presence once under the limit again.
const largeForgetAfter = 10 * time.Minute

// carriesPresenceLocked reports whether a chat announces presence: it has
// at most PresenceLimit connections and has not had more lately. h.mu is
// held (for reading at least).
func (h *Hub) carriesPresenceLocked(chatID int64, now time.Time) bool {
	if len(h.chats[chatID]) > h.opt.PresenceLimit {
		return false
	}
	seen, ok := h.large[chatID]
	return !ok || now.Sub(seen) > largeForgetAfter
}

// unregister removes a connection; it reports whether its user went offline
// and which chats the user was in.
func (h *Hub) unregister(c *Conn) (wentOffline bool, chatIDs []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.all, c)
	for id := range c.subscribed {
		chatIDs = append(chatIDs, id)
		if subs := h.chats[id]; subs != nil {
			delete(subs, c)
			if len(subs) == 0 {
				delete(h.chats, id)
			}
		}
	}
	uid := c.id.UserID
	if conns := h.users[uid]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(h.users, uid)
			if h.opt.PresenceGrace > 0 && !h.closing {
				h.goAwayLocked(uid, chatIDs) // online to the others until the grace ends
			} else {
				delete(h.names, uid)
				wentOffline = true
			}
		}
	}
	return wentOffline, chatIDs
}

// subscribe adds a connection to a chat's live stream, if it is still
// registered.
func (h *Hub) subscribe(c *Conn, chatID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, live := h.all[c]; live {
		h.subscribeLocked(c, chatID)
	}
}

func (h *Hub) unsubscribe(c *Conn, chatID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unsubscribeLocked(c, chatID)
}

func (h *Hub) unsubscribeLocked(c *Conn, chatID int64) {
	delete(c.subscribed, chatID)
	if subs := h.chats[chatID]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(h.chats, chatID)
		}
	}
}

// IsOnline reports whether the user has a connection on this node, or had
// one less than the presence grace ago.
func (h *Hub) IsOnline(userID int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.onlineLocked(userID)
}

func (h *Hub) onlineLocked(userID int64) bool {
	return h.users[userID] != nil || h.away[userID] != nil
}

// OnlineIn returns the usernames of the users online in any of the given
// chats, sorted: who is online among the people a user shares chats with.
func (h *Hub) OnlineIn(chatIDs []int64) []string {
	h.mu.RLock()
	seen := make(map[int64]struct{})
	for _, id := range chatIDs {
		for c := range h.chats[id] {
			seen[c.id.UserID] = struct{}{}
		}
		for uid := range h.awayIn[id] {
			seen[uid] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for uid := range seen {
		out = append(out, h.names[uid])
	}
	h.mu.RUnlock()
	slices.Sort(out)
	return out
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
	h.mu.RLock()
	defer h.mu.RUnlock()
	return Stats{Connections: len(h.all), Users: len(h.users) + len(h.away), Chats: len(h.chats), Frames: h.frames.Load(), Writes: h.writes.Load()}
}

// Online returns the usernames of users with at least one connection here
// (or in the presence grace), sorted.
func (h *Hub) Online() []string {
	h.mu.RLock()
	out := make([]string, 0, len(h.names))
	for _, n := range h.names {
		out = append(out, n)
	}
	h.mu.RUnlock()
	slices.Sort(out)
	return out
}

// announce tells every connection that shares one of chatIDs with the user
// whether the user is online now; chats over Options.PresenceLimit are
// left out. Announcements are serialised and each
// reads the current state, so the last one a client gets is the truth even
// when one tab closes as another opens.
func (h *Hub) announce(userID int64, username string, chatIDs []int64) {
	h.presenceMu.Lock()
	defer h.presenceMu.Unlock()
	h.mu.RLock()
	online := h.onlineLocked(userID)
	frame, _ := json.Marshal(wire.Presence{Type: wire.TypePresence, Username: username, Online: online})
	seen := make(map[*Conn]struct{})
	now := time.Now()
	for _, id := range chatIDs {
		if !h.carriesPresenceLocked(id, now) {
			continue
		}
		for c := range h.chats[id] {
			if c.id.UserID != userID {
				seen[c] = struct{}{}
			}
		}
	}
	h.mu.RUnlock()
	for c := range seen {
		c.enqueue(frame)
	}
}

// CloseSession closes every connection opened in a session (after logout).
func (h *Hub) CloseSession(sessionID int64) {
	h.mu.RLock()
	var victims []*Conn
	for c := range h.all {
		if c.id.SessionID == sessionID {
			victims = append(victims, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range victims {
		c.close(websocket.StatusPolicyViolation, "logged out")
	}
}

// Shutdown refuses new connections, tells every connection to reconnect
// (close 1012, service restart) and waits for them to finish or ctx to end.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	conns := make([]*Conn, 0, len(h.all))
	for c := range h.all {
		conns = append(conns, c)
	}
	h.mu.Unlock()
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

// onlineFor lists the online users who share a chat that carries presence
// (see Options.PresenceLimit) with c's user, including that user, sorted.
func (h *Hub) onlineFor(c *Conn) []string {
	h.mu.RLock()
	seen := map[int64]struct{}{c.id.UserID: {}}
	now := time.Now()
	for id := range c.subscribed {
		if !h.carriesPresenceLocked(id, now) {
			continue
		}
		for other := range h.chats[id] {
			seen[other.id.UserID] = struct{}{}
		}
		for uid := range h.awayIn[id] {
			seen[uid] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for uid := range seen {
		if n, ok := h.names[uid]; ok {
			out = append(out, n)
		}
	}
	h.mu.RUnlock()
	slices.Sort(out)
	return out
}
