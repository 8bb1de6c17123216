package main

import "testing"

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []int{0, 63, 64, 1000} {
		if b.set(i) {
			t.Fatalf("%d reported as already set", i)
		}
	}
	if !b.set(63) {
		t.Fatal("setting 63 twice must report it")
	}
	if b.count() != 4 || !b.has(1000) || b.has(999) || b.has(100000) {
		t.Fatalf("count %d", b.count())
	}
	var c bitset
	c.set(0)
	c.set(64)
	c.set(5)
	if n := b.andNotCount(c); n != 2 { // 63 and 1000
		t.Fatalf("b \\ c = %d, want 2", n)
	}
	if n := c.andNotCount(b); n != 1 { // 5
		t.Fatalf("c \\ b = %d, want 1", n)
	}
}

// receiverWith makes a room member that received the given sequence
// numbers, in order (repeats count as duplicates).
func receiverWith(seqs ...int) *client {
	c := &client{}
	for _, s := range seqs {
		c.received++
		if c.got.set(s) {
			c.duplicates++
		}
	}
	return c
}

func TestAccount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sent    int
		acked   []int
		refused []int
		members []*client
		want    delivery
	}{
		{
			name: "everything arrives", sent: 3, acked: []int{0, 1, 2},
			members: []*client{receiverWith(0, 1, 2), receiverWith(0, 1, 2)},
			want:    delivery{Messages: 3, Acked: 3, Expected: 6, Received: 6, Unique: 6},
		},
		{
			name: "one member misses one message, another gets one twice", sent: 3, acked: []int{0, 1, 2},
			members: []*client{receiverWith(0, 2), receiverWith(0, 1, 1, 2)},
			want:    delivery{Messages: 3, Acked: 3, Expected: 6, Received: 6, Unique: 5, Duplicates: 1, Lost: 1, LostMessages: 1},
		},
		{
			name: "two members miss the same message: one message lost, two deliveries", sent: 2, acked: []int{0, 1},
			members: []*client{receiverWith(0), receiverWith(0), receiverWith(0, 1)},
			want:    delivery{Messages: 2, Acked: 2, Expected: 6, Received: 4, Unique: 4, Lost: 2, LostMessages: 1},
		},
		{
			name: "refused and unacked messages are not expected", sent: 4, acked: []int{0}, refused: []int{1},
			members: []*client{receiverWith(0, 3)}, // 3 arrived without its ack (the sender was cut)
			want:    delivery{Messages: 4, Acked: 1, Rejected: 1, Unacked: 2, Expected: 1, Received: 2, Unique: 2, Unexpected: 1},
		},
		{
			name: "far sequence numbers", sent: 200, acked: []int{0, 130, 199},
			members: []*client{receiverWith(0, 199)},
			want:    delivery{Messages: 200, Acked: 3, Unacked: 197, Expected: 3, Received: 2, Unique: 2, Lost: 1, LostMessages: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &room{next: tc.sent, sentAt: make([]int64, tc.sent), members: tc.members}
			for _, s := range tc.acked {
				r.ack(s, int64(100+s))
			}
			for _, s := range tc.refused {
				r.reject(s)
			}
			// A second room must add up independently.
			other := &room{next: 1, sentAt: make([]int64, 1), members: []*client{receiverWith()}}
			other.ack(0, 500)
			got := account([]*room{r, other})
			want := tc.want
			want.Messages++
			want.Acked++
			want.Expected++
			want.Lost++
			want.LostMessages++
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestRoomAckFirstOnly(t *testing.T) {
	r := &room{}
	s0 := r.nextSeq(111)
	s1 := r.nextSeq(222)
	if s0 != 0 || s1 != 1 {
		t.Fatalf("sequence numbers %d, %d", s0, s1)
	}
	if at, first := r.ack(1, 50); !first || at != 222 {
		t.Fatalf("first ack: %d %v", at, first)
	}
	if _, first := r.ack(1, 50); first {
		t.Fatal("a resend's second ack must not count again")
	}
	if _, first := r.ack(7, 60); first {
		t.Fatal("an ack for a sequence number never sent must be ignored")
	}
	r.ack(0, 40)
	if r.firstID != 40 || r.lastID != 50 {
		t.Fatalf("ids %d..%d", r.firstID, r.lastID)
	}
}

func TestPlanRooms(t *testing.T) {
	sizes := planRooms(1000, 5, 10, 1)
	total := 0
	for i, n := range sizes {
		total += n
		if (n < 5 || n > 10) && i != len(sizes)-1 {
			t.Fatalf("room %d has %d members", i, n)
		}
	}
	if total != 1000 {
		t.Fatalf("rooms hold %d clients, want 1000", total)
	}
	again := planRooms(1000, 5, 10, 1)
	if len(again) != len(sizes) {
		t.Fatal("the plan must be repeatable")
	}
}
