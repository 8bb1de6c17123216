package hub

import (
	"slices"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// index owns every map of the hub, so that one lock guards them all and no
// field of a connection is guarded by another struct's lock: connections by
// chat and by user, each connection's subscriptions, the names of the users
// online, and the presence state of big chats and of users in their grace.
//
// Lock order: Hub.presenceMu, then index.mu. index.mu is never held while
// a connection's locks (Conn.mu, Conn.qmu) are taken: code collects the
// connections under it and queues frames after releasing it.
type index struct {
	mu sync.RWMutex

	// subs is every registered connection, with the chats it receives
	// live.
	subs map[*Conn]map[int64]struct{}
	// byChat and byUser are the same connections by chat and by user.
	byChat map[int64]map[*Conn]struct{}
	byUser map[int64]map[*Conn]struct{}
	// names holds the usernames of the users online (with a connection, or
	// in their presence grace).
	names map[int64]string

	// large holds, for each chat that has had more than the presence limit
	// of connections, when it last had them. Such a chat carries no
	// presence until it has stayed under the limit for largeForgetAfter:
	// in a reconnect storm a big room empties for a moment, and must not
	// start announcing every returning member to everyone there.
	large map[int64]time.Time

	// away holds the users whose last connection closed less than the
	// presence grace ago, and awayIn the chats they were in. To everyone
	// else they are online until the grace ends.
	away   map[int64]*awayUser
	awayIn map[int64]map[int64]struct{} // chat id → away user ids

	// remote holds the users online on other nodes (Hub.RemotePresence),
	// and remoteIn the chats they are in.
	remote   map[int64]*remoteUser
	remoteIn map[int64]map[int64]struct{} // chat id → remote user ids

	// closing is set by Shutdown: new connections are refused.
	closing bool

	// presenceLimit is Options.PresenceLimit: a chat with more people
	// online in it, here and on the other nodes, carries no presence.
	presenceLimit int
}

// awayUser is a user in the grace after their last connection closed.
type awayUser struct {
	name    string
	chatIDs []int64 // the chats the last connection was in
	until   time.Time
}

// remoteUser is a user online on another node.
type remoteUser struct {
	name    string
	chatIDs []int64
}

func newIndex(presenceLimit int) index {
	return index{
		presenceLimit: presenceLimit,
		subs:          make(map[*Conn]map[int64]struct{}),
		byChat:        make(map[int64]map[*Conn]struct{}),
		byUser:        make(map[int64]map[*Conn]struct{}),
		names:         make(map[int64]string),
		large:         make(map[int64]time.Time),
		away:          make(map[int64]*awayUser),
		awayIn:        make(map[int64]map[int64]struct{}),

		remote:   make(map[int64]*remoteUser),
		remoteIn: make(map[int64]map[int64]struct{}),
	}
}

// largeForgetAfter is how long a chat that had more than the presence limit
// of connections stays without presence once under the limit again.
const largeForgetAfter = 10 * time.Minute

// The methods below whose names end in Locked need ix.mu held: for writing
// when they change something, for reading at least otherwise.

// subscribeLocked adds c to a chat's live stream; presenceLimit marks the
// chat large when it grows past it.
func (ix *index) subscribeLocked(c *Conn, chatID int64, presenceLimit int) {
	chats := ix.subs[c]
	if chats == nil {
		return // not registered (any more)
	}
	chats[chatID] = struct{}{}
	conns := ix.byChat[chatID]
	if conns == nil {
		conns = make(map[*Conn]struct{})
		ix.byChat[chatID] = conns
	}
	conns[c] = struct{}{}
	if len(conns)+len(ix.remoteIn[chatID]) > presenceLimit {
		ix.large[chatID] = time.Now()
	}
}

func (ix *index) unsubscribeLocked(c *Conn, chatID int64) {
	delete(ix.subs[c], chatID)
	if conns := ix.byChat[chatID]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(ix.byChat, chatID)
		}
	}
}

// subscribed reports whether c receives a chat live.
func (ix *index) subscribed(c *Conn, chatID int64) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, ok := ix.subs[c][chatID]
	return ok
}

// goAwayLocked starts a user's grace, until: the hub announces them offline
// when it ends, unless they come back first.
func (ix *index) goAwayLocked(uid int64, chatIDs []int64, until time.Time) {
	ix.away[uid] = &awayUser{name: ix.names[uid], chatIDs: chatIDs, until: until}
	for _, id := range chatIDs {
		users := ix.awayIn[id]
		if users == nil {
			users = make(map[int64]struct{})
			ix.awayIn[id] = users
		}
		users[uid] = struct{}{}
	}
}

// dropAwayLocked ends a user's grace.
func (ix *index) dropAwayLocked(uid int64, a *awayUser) {
	delete(ix.away, uid)
	for _, id := range a.chatIDs {
		if users := ix.awayIn[id]; users != nil {
			delete(users, uid)
			if len(users) == 0 {
				delete(ix.awayIn, id)
			}
		}
	}
}

// addRemoteLocked records a user online on another node, in chatIDs.
func (ix *index) addRemoteLocked(uid int64, name string, chatIDs []int64) {
	ix.remote[uid] = &remoteUser{name: name, chatIDs: chatIDs}
	for _, id := range chatIDs {
		ix.joinRemoteLocked(uid, id)
	}
}

func (ix *index) joinRemoteLocked(uid, chatID int64) {
	users := ix.remoteIn[chatID]
	if users == nil {
		users = make(map[int64]struct{})
		ix.remoteIn[chatID] = users
	}
	users[uid] = struct{}{}
	// Big counts across the nodes: a room of 1,000 spread over three
	// nodes is as big on each as it is on one.
	if ix.presenceLimit > 0 && len(ix.byChat[chatID])+len(users) > ix.presenceLimit {
		ix.large[chatID] = time.Now()
	}
}

func (ix *index) leaveRemoteLocked(uid, chatID int64) {
	if users := ix.remoteIn[chatID]; users != nil {
		delete(users, uid)
		if len(users) == 0 {
			delete(ix.remoteIn, chatID)
		}
	}
}

// dropRemoteLocked forgets a user online on another node.
func (ix *index) dropRemoteLocked(uid int64, r *remoteUser) {
	delete(ix.remote, uid)
	for _, id := range r.chatIDs {
		ix.leaveRemoteLocked(uid, id)
	}
}

// membershipRemoteLocked follows a membership change of a user online on
// another node.
func (ix *index) membershipRemoteLocked(uid, chatID int64, membership string) {
	r := ix.remote[uid]
	if r == nil {
		return
	}
	switch membership {
	case chat.MembershipJoin:
		if !slices.Contains(r.chatIDs, chatID) {
			r.chatIDs = append(slices.Clip(r.chatIDs), chatID)
			ix.joinRemoteLocked(uid, chatID)
		}
	case chat.MembershipLeave:
		if i := slices.Index(r.chatIDs, chatID); i >= 0 {
			r.chatIDs = slices.Delete(slices.Clone(r.chatIDs), i, i+1)
			ix.leaveRemoteLocked(uid, chatID)
		}
	}
}

// carriesPresenceLocked reports whether a chat announces presence: it has
// at most presenceLimit connections here and users online in it on other
// nodes, and has not had more lately.
func (ix *index) carriesPresenceLocked(chatID int64, presenceLimit int, now time.Time) bool {
	if len(ix.byChat[chatID])+len(ix.remoteIn[chatID]) > presenceLimit {
		return false
	}
	seen, ok := ix.large[chatID]
	return !ok || now.Sub(seen) > largeForgetAfter
}

// onlineLocked reports whether a user has a connection or is in the grace.
func (ix *index) onlineLocked(userID int64) bool {
	return ix.byUser[userID] != nil || ix.away[userID] != nil || ix.remote[userID] != nil
}

// conns returns every registered connection.
func (ix *index) conns(into []*Conn) []*Conn {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for c := range ix.subs {
		into = append(into, c)
	}
	return into
}

// namesOfLocked returns the names of the given users that are online,
// sorted.
func (ix *index) namesOfLocked(users map[int64]struct{}) []string {
	out := make([]string, 0, len(users))
	for uid := range users {
		if n, ok := ix.names[uid]; ok {
			out = append(out, n)
		} else if r := ix.remote[uid]; r != nil {
			out = append(out, r.name)
		}
	}
	slices.Sort(out)
	return out
}
