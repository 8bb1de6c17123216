package main

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// killProcess ends the process behind the killed node. Tests replace it.
var killProcess = func(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// failoverResult is what the failover scenario measured: a node killed
// with SIGKILL under load, and its clients moving to the other nodes.
type failoverResult struct {
	Node    string `json:"node"` // the -url of the killed node
	PID     int    `json:"pid"`
	Clients int    `json:"clients"` // connected to it at the kill
	Back    int    `json:"back"`    // reconnected to another node and synced
	// CaughtUp counts those back that also held every message of their
	// room acknowledged (to anyone) up to the kill.
	CaughtUp int `json:"caught_up"`
	// Missing is, at the end of the wait, how many (client, message) pairs
	// acknowledged before the kill the killed node's clients still lacked.
	Missing            int64          `json:"missing"`
	AllBackSeconds     float64        `json:"all_back_seconds"`      // kill → the last one back and synced
	AllCaughtUpSeconds float64        `json:"all_caught_up_seconds"` // kill → the last one caught up
	BackEach           summary        `json:"back_each"`             // kill → back, each client
	CaughtUpEach       summary        `json:"caught_up_each"`        // kill → caught up, each client
	MovedTo            map[string]int `json:"moved_to"`              // clients by the node they reconnected to
	Jitter             float64        `json:"jitter_s"`
}

// nodeForClient places client i of n: with -kill-clients, that many of
// them, spread evenly through the list (so every room has some), on the
// node to be killed, and the rest round-robin over the others; otherwise
// all round-robin.
func nodeForClient(i, n, nodes, kill, killClients int) int {
	if kill < 0 || killClients <= 0 {
		return i % nodes
	}
	if (i+1)*killClients/n > i*killClients/n {
		return kill
	}
	// The how-many-th client off the killed node this is.
	j := i - (i+1)*killClients/n
	other := j % (nodes - 1)
	if other >= kill {
		other++
	}
	return other
}

// aliveNode picks, round-robin, a node that has not been killed.
func (b *bench) aliveNode() int {
	n := len(b.cfg.nodes)
	start := int(b.nextNode.Add(1))
	for k := range n {
		i := (start + k) % n
		if !b.dead[i].Load() {
			return i
		}
	}
	return 0
}

// failover kills the -kill-node's process with SIGKILL, lets its clients
// reconnect to the other nodes (round-robin, each after its jitter, with a
// new ticket, resume=1 and a sync from the last id it saw), and measures
// how long until all are back and until all hold every message that had
// been acknowledged when the kill was sent.
func (b *bench) failover(ctx context.Context, until time.Time) *failoverResult {
	k := b.cfg.killNode - 1
	fr := &failoverResult{Node: b.cfg.nodes[k].String(), PID: b.cfg.killPID, MovedTo: map[string]int{}, Jitter: b.cfg.reconnectJitter.Seconds()}
	var victims []*client
	for _, c := range b.clients {
		c.mu.Lock()
		if !c.failed && c.node == k {
			victims = append(victims, c)
		}
		c.mu.Unlock()
	}
	fr.Clients = len(victims)
	fmt.Fprintf(b.log, "kill -9 %d (node %s, %d clients)\n", b.cfg.killPID, fr.Node, len(victims))
	// Marked first, so that no reconnect goes back to it.
	b.dead[k].Store(true)
	killAt := time.Now()
	if err := killProcess(b.cfg.killPID); err != nil {
		b.noteError("kill", fmt.Errorf("kill -9 %d: %w", b.cfg.killPID, err))
		return fr
	}
	// Every message acknowledged by now has committed: each member must
	// get it, the killed node's clients through their sync.
	want := map[*room]bitset{}
	for _, r := range b.rooms {
		r.mu.Lock()
		want[r] = slices.Clone(r.acked)
		r.mu.Unlock()
	}
	type track struct {
		c          *client
		back       time.Time
		incomplete time.Time // the last poll that found it back but lacking something
	}
	pending := make([]*track, len(victims))
	for i, c := range victims {
		pending[i] = &track{c: c}
	}
	var backEach, caughtEach hist
	var lastBack, lastCaught time.Time
	// Bounded by the measured window and the drain after it.
	limit := until.Add(b.cfg.drain)
	for len(pending) > 0 && ctx.Err() == nil {
		now := time.Now()
		keep := pending[:0]
		for _, t := range pending {
			c := t.c
			c.mu.Lock()
			back := c.node != k && c.backAt.After(killAt) && !c.connecting && c.gen > 0
			backAt, node := c.backAt, c.node
			complete := c.room == nil || want[c.room].andNotCount(c.got) == 0
			c.mu.Unlock()
			if back && t.back.IsZero() {
				t.back = backAt
				backEach.record(backAt.Sub(killAt))
				lastBack = later(lastBack, backAt)
				fr.Back++
				fr.MovedTo[b.cfg.nodes[node].String()]++
			}
			if !back {
				keep = append(keep, t)
				continue
			}
			if !complete {
				t.incomplete = now
				keep = append(keep, t)
				continue
			}
			caught := t.back
			if t.incomplete.After(caught) {
				caught = now
			}
			caughtEach.record(caught.Sub(killAt))
			lastCaught = later(lastCaught, caught)
			fr.CaughtUp++
		}
		pending = keep
		if len(pending) == 0 || !time.Now().Before(limit) {
			break
		}
		sleepCtx(ctx, 5*time.Millisecond)
	}
	for _, t := range pending {
		c := t.c
		c.mu.Lock()
		if c.room != nil {
			fr.Missing += int64(want[c.room].andNotCount(c.got))
		}
		c.mu.Unlock()
	}
	if !lastBack.IsZero() {
		fr.AllBackSeconds = round3(lastBack.Sub(killAt).Seconds())
	}
	if !lastCaught.IsZero() {
		fr.AllCaughtUpSeconds = round3(lastCaught.Sub(killAt).Seconds())
	}
	fr.BackEach, fr.CaughtUpEach = backEach.summary(), caughtEach.summary()
	fmt.Fprintf(b.log, "  %d/%d back %.2f s after the kill, %d caught up %.2f s after it\n",
		fr.Back, fr.Clients, fr.AllBackSeconds, fr.CaughtUp, fr.AllCaughtUpSeconds)
	return fr
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
