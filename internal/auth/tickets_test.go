package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
)

// MustTicket issues a ticket for id.
func (f *fixture) MustTicket(tb testing.TB, id chat.Identity) string {
	tb.Helper()
	t, err := f.svc.IssueTicket(context.Background(), id)
	if err != nil {
		tb.Fatalf("a ticket was refused: %v", err)
	}
	return t
}

// MustRedeem fails the test unless ticket opens id's session.
func (f *fixture) MustRedeem(tb testing.TB, ticket string, id chat.Identity) {
	tb.Helper()
	got, err := f.svc.RedeemTicket(context.Background(), ticket)
	if err != nil || got != id {
		tb.Fatalf("RedeemTicket = %+v, %v; want %+v", got, err, id)
	}
}

// MustNotRedeem fails the test unless ticket is refused.
func (f *fixture) MustNotRedeem(tb testing.TB, ticket string) {
	tb.Helper()
	_, err := f.svc.RedeemTicket(context.Background(), ticket)
	wantCode(tb, err, chat.EUnauthorized)
}

// TestTicketsPerSession: a session holds at most 16 pending tickets; a
// 17th evicts its oldest, and leaves other sessions' tickets alone.
func TestTicketsPerSession(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	laptop, phone := f.MustLogin(t, "alice").Identity, f.MustLogin(t, "alice").Identity
	onPhone := f.MustTicket(t, phone)
	var issued []string
	for range 17 {
		issued = append(issued, f.MustTicket(t, laptop))
	}
	f.MustNotRedeem(t, issued[0])
	f.MustRedeem(t, issued[16], laptop)
	f.MustRedeem(t, issued[1], laptop)
	f.MustRedeem(t, onPhone, phone)
}

// TestTicketsPerUser: a user holds at most 64 pending tickets across their
// sessions; more evict the oldest.
func TestTicketsPerUser(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	f.MustUser(t, "alice")
	var sessions []chat.Identity
	var issued [][]string
	for range 5 {
		id := f.MustLogin(t, "alice").Identity
		sessions = append(sessions, id)
		var mine []string
		for range 16 {
			mine = append(mine, f.MustTicket(t, id))
		}
		issued = append(issued, mine)
	}
	// 80 asked for: the first session's 16 were the oldest.
	for _, ticket := range issued[0] {
		f.MustNotRedeem(t, ticket)
	}
	f.MustRedeem(t, issued[1][0], sessions[1])
	f.MustRedeem(t, issued[4][15], sessions[4])
}

// TestTicketFloodLeavesOthersAlone: one session asking for 100,000 tickets
// cannot keep another user from getting one; its own newest still works,
// once, for 30 s.
func TestTicketFloodLeavesOthersAlone(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	f.MustUser(t, "mallory")
	f.MustUser(t, "bob")
	mallory, bob := f.MustLogin(t, "mallory").Identity, f.MustLogin(t, "bob").Identity
	var first, last string
	for i := range 100_000 {
		ticket, err := f.svc.IssueTicket(context.Background(), mallory)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		if i == 0 {
			first = ticket
		}
		last = ticket
	}
	forBob := f.MustTicket(t, bob)
	f.clock.Advance(auth.TicketTTL - time.Millisecond)
	f.MustRedeem(t, forBob, bob)
	f.MustNotRedeem(t, first)
	f.MustRedeem(t, last, mallory)
	f.MustNotRedeem(t, last)
}

// TestTicketTableFull: should the node's table ever fill up, a new ticket
// is still issued: the oldest of whoever holds the most makes room.
func TestTicketTableFull(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	auth.SetTicketLimits(f.svc, 16, 64, 10)
	f.MustUser(t, "mallory")
	f.MustUser(t, "bob")
	mallory, bob := f.MustLogin(t, "mallory").Identity, f.MustLogin(t, "bob").Identity
	forBob := f.MustTicket(t, bob)
	var held []string
	for range 9 {
		held = append(held, f.MustTicket(t, mallory))
	}
	// Full: ten pending. Bob's second ticket evicts mallory's oldest, not
	// his own.
	again := f.MustTicket(t, bob)
	f.MustNotRedeem(t, held[0])
	f.MustRedeem(t, forBob, bob)
	f.MustRedeem(t, again, bob)
	f.MustRedeem(t, held[1], mallory)

}

// TestTicketTableFullDropsExpiredFirst: a full table first drops expired
// tickets, and only then evicts live ones.
func TestTicketTableFullDropsExpiredFirst(t *testing.T) {
	t.Parallel()
	f := MustService(t, "open")
	auth.SetTicketLimits(f.svc, 16, 64, 10)
	for _, name := range []string{"mallory", "bob", "carol"} {
		f.MustUser(t, name)
	}
	mallory, bob, carol := f.MustLogin(t, "mallory").Identity, f.MustLogin(t, "bob").Identity, f.MustLogin(t, "carol").Identity
	for range 4 {
		f.MustTicket(t, mallory)
	}
	f.clock.Advance(20 * time.Second)
	var forBob []string
	for range 6 {
		forBob = append(forBob, f.MustTicket(t, bob))
	}
	// Full, and mallory's four have expired: they make room, so bob, who
	// holds the most, keeps all of his.
	f.clock.Advance(15 * time.Second)
	forCarol := f.MustTicket(t, carol)
	for _, ticket := range forBob {
		f.MustRedeem(t, ticket, bob)
	}
	f.MustRedeem(t, forCarol, carol)
}
