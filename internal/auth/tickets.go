package auth

import (
	"slices"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Limits on pending WebSocket tickets. A client asks for one ticket per
// connect, so 16 leave a session room for a burst of reconnects and 64 a
// user room for several devices and tabs, while no account can fill the
// node's table and keep everyone else from connecting.
const (
	ticketsPerSession = 16
	ticketsPerUser    = 64
	maxTickets        = 100_000
)

// ticketTable holds the pending tickets of one node. Asking for a ticket
// never fails: a session or user over its share loses its own oldest
// ticket, and a full table (which takes many users at their share at once)
// drops expired tickets and then the oldest of the user holding the most.
type ticketTable struct {
	mu       sync.Mutex
	byTicket map[string]ticket
	// byUser lists each user's pending tickets, oldest first. Every ticket
	// is in byTicket and in its user's list, or in neither.
	byUser map[int64][]string

	perSession, perUser, max int
}

type ticket struct {
	userID, sessionID int64
	expires           time.Time
}

func newTicketTable() *ticketTable {
	return &ticketTable{
		byTicket: make(map[string]ticket), byUser: make(map[int64][]string),
		perSession: ticketsPerSession, perUser: ticketsPerUser, max: maxTickets,
	}
}

// issue adds a ticket for id's session, valid for TicketTTL from now.
func (tt *ticketTable) issue(id chat.Identity, now time.Time) string {
	t := randomToken(32)
	tt.mu.Lock()
	defer tt.mu.Unlock()
	mine := tt.dropExpired(id.UserID, now)
	inSession := 0
	for _, k := range mine {
		if tt.byTicket[k].sessionID == id.SessionID {
			inSession++
		}
	}
	if inSession >= tt.perSession {
		oldest := slices.IndexFunc(mine, func(k string) bool { return tt.byTicket[k].sessionID == id.SessionID })
		tt.remove(mine[oldest])
	}
	if mine := tt.byUser[id.UserID]; len(mine) >= tt.perUser {
		tt.remove(mine[0])
	}
	if len(tt.byTicket) >= tt.max {
		for userID := range tt.byUser {
			tt.dropExpired(userID, now)
		}
	}
	if len(tt.byTicket) >= tt.max {
		tt.remove(tt.byUser[tt.heaviest()][0])
	}
	tt.byTicket[t] = ticket{userID: id.UserID, sessionID: id.SessionID, expires: now.Add(TicketTTL)}
	tt.byUser[id.UserID] = append(tt.byUser[id.UserID], t)
	return t
}

// redeem consumes a ticket, returning its session if it was pending and
// has not expired.
func (tt *ticketTable) redeem(t string, now time.Time) (sessionID int64, ok bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tk, ok := tt.byTicket[t]
	if !ok {
		return 0, false
	}
	tt.remove(t)
	return tk.sessionID, now.Before(tk.expires)
}

// sweep drops every expired ticket.
func (tt *ticketTable) sweep(now time.Time) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for userID := range tt.byUser {
		tt.dropExpired(userID, now)
	}
}

// dropExpired removes a user's expired tickets and returns those left.
// Tickets are listed in the order they were issued, with one TTL, so the
// expired ones are at the front.
func (tt *ticketTable) dropExpired(userID int64, now time.Time) []string {
	mine := tt.byUser[userID]
	n := 0
	for n < len(mine) && !now.Before(tt.byTicket[mine[n]].expires) {
		delete(tt.byTicket, mine[n])
		n++
	}
	if n == len(mine) {
		delete(tt.byUser, userID)
		return nil
	}
	mine = mine[n:]
	tt.byUser[userID] = mine
	return mine
}

// remove deletes a pending ticket from both indexes.
func (tt *ticketTable) remove(t string) {
	tk := tt.byTicket[t]
	delete(tt.byTicket, t)
	mine := slices.DeleteFunc(tt.byUser[tk.userID], func(k string) bool { return k == t })
	if len(mine) == 0 {
		delete(tt.byUser, tk.userID)
		return
	}
	tt.byUser[tk.userID] = mine
}

// heaviest returns the user holding the most pending tickets. The table is
// full only when many users are, so this scan is rare.
func (tt *ticketTable) heaviest() int64 {
	var who int64
	most := 0
	for userID, mine := range tt.byUser {
		if len(mine) > most {
			who, most = userID, len(mine)
		}
	}
	return who
}
