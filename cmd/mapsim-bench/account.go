package main

import (
	"math/bits"
	"sync"
)

// bitset is a growable set of small non-negative integers: the room-local
// sequence numbers of messages sent, acked, or received by one connection.
type bitset []uint64

// set adds i and reports whether it was already there.
func (b *bitset) set(i int) (was bool) {
	w := i / 64
	if w >= len(*b) {
		grown := make(bitset, w+1, max(w+1, 2*len(*b)))
		copy(grown, *b)
		*b = grown
	}
	m := uint64(1) << (i % 64)
	was = (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(i int) bool {
	w := i / 64
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// andNotCount is |b \ c|: members of b missing from c.
func (b bitset) andNotCount(c bitset) int {
	n := 0
	for i, w := range b {
		if i < len(c) {
			w &^= c[i]
		}
		n += bits.OnesCount64(w)
	}
	return n
}

// room is one chat of the run with the sequence numbers of its messages.
// Sequence numbers are room-local and dense, so each connection's
// deliveries fit in a small bitset.
type room struct {
	idx     int
	name    string // the chat's name, such as group:ab12…
	id      int64
	afterID int64     // where a member syncs from: the last id before the run
	members []*client // connections that receive this room's messages
	senders []*client // connections that send into it
	owner   *user     // creates the chat
	users   []*user   // every user with a connection in it
	rr      int       // the next sender to try, used by its pacer only

	mu       sync.Mutex
	next     int     // next sequence number
	sentAt   []int64 // Unix nanoseconds of each send
	acked    bitset
	rejected bitset // refused by the server (too_many, invalid…): not expected anywhere
	firstID  int64  // smallest and largest message id acked
	lastID   int64
}

// nextSeq reserves a sequence number and notes its send time.
func (r *room) nextSeq(now int64) int {
	r.mu.Lock()
	seq := r.next
	r.next++
	r.sentAt = append(r.sentAt, now)
	r.mu.Unlock()
	return seq
}

// ack marks a sequence number committed under a message id. It returns
// the send time and whether this is its first ack (a resend is acked again).
func (r *room) ack(seq int, id int64) (sentAt int64, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < 0 || seq >= r.next {
		return 0, false
	}
	if r.acked.set(seq) {
		return r.sentAt[seq], false
	}
	if r.firstID == 0 || id < r.firstID {
		r.firstID = id
	}
	r.lastID = max(r.lastID, id)
	return r.sentAt[seq], true
}

func (r *room) reject(seq int) {
	r.mu.Lock()
	if seq >= 0 && seq < r.next {
		r.rejected.set(seq)
	}
	r.mu.Unlock()
}

// delivery is what the accounting concluded about the messages of a run.
type delivery struct {
	Messages   int64 `json:"messages"`   // messages sent (sequence numbers used)
	Acked      int64 `json:"acked"`      // committed and acknowledged
	Rejected   int64 `json:"rejected"`   // refused by the server with an error frame
	Unacked    int64 `json:"unacked"`    // neither acked nor refused by the end of the drain
	Expected   int64 `json:"expected"`   // acked messages × receiving members of their room
	Received   int64 `json:"received"`   // message frames of this run, duplicates included
	Unique     int64 `json:"unique"`     // distinct (connection, message) pairs received
	Duplicates int64 `json:"duplicates"` // a connection got the same message again
	Lost       int64 `json:"lost"`       // acked, but a member never got it
	// LostMessages counts acked messages that at least one member missed.
	LostMessages int64 `json:"lost_messages"`
	// Unexpected counts deliveries of messages never acked (sent before a cut,
	// say): not a loss, and not in Expected.
	Unexpected int64 `json:"delivered_unacked"`
	// Reordered counts messages that arrived with a lower id than one the
	// connection already had from the same chat.
	Reordered int64 `json:"reordered"`
}

// account compares, room by room, what was acked with what each member
// received. It must run after every reader has stopped.
func account(rooms []*room) delivery {
	var d delivery
	for _, r := range rooms {
		r.mu.Lock()
		acked := r.acked.count()
		d.Messages += int64(r.next)
		d.Acked += int64(acked)
		d.Rejected += int64(r.rejected.andNotCount(r.acked))
		d.Expected += int64(acked * len(r.members))
		var missedBy bitset
		for _, c := range r.members {
			c.mu.Lock()
			d.Received += c.received
			d.Duplicates += c.duplicates
			d.Reordered += c.reordered
			d.Unique += int64(c.got.count())
			d.Lost += int64(r.acked.andNotCount(c.got))
			d.Unexpected += int64(c.got.andNotCount(r.acked))
			for w, bitsAcked := range r.acked {
				var have uint64
				if w < len(c.got) {
					have = c.got[w]
				}
				if miss := bitsAcked &^ have; miss != 0 {
					for len(missedBy) <= w {
						missedBy = append(missedBy, 0)
					}
					missedBy[w] |= miss
				}
			}
			c.mu.Unlock()
		}
		d.LostMessages += int64(missedBy.count())
		r.mu.Unlock()
	}
	d.Unacked = d.Messages - d.Acked - d.Rejected
	return d
}
