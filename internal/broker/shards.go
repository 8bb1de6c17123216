package broker

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// DefaultShards is how many channels carry the chats' events: a chat's
// events go to the channel of its id modulo the shards, and a node
// subscribes a shard while it holds a connection in one of its chats. A
// node thus subscribes at most this many channels, whatever the number of
// chats it holds, and hears another chat's events only when the two share
// a shard. See ARCHITECTURE.md, "Several nodes".
const DefaultShards = 1024

// DefaultShardIdle is how long a shard stays subscribed after its last
// chat with a connection here has gone, so that a client that comes and
// goes does not make the node subscribe and unsubscribe each time.
const DefaultShardIdle = time.Minute

// AwaitTimeout bounds Redis.Await: past it, a connection goes on, and the
// shard's fill once subscribed brings what it missed.
const AwaitTimeout = 2 * time.Second

// shard is one shard channel as this node subscribes it.
type shard struct {
	// subscribed: Redis has confirmed it (a PING sent after the SUBSCRIBE
	// has been answered); otherwise it is being subscribed.
	subscribed bool
	// leaving: to be unsubscribed (subscribeLoop sends it and forgets
	// the shard).
	leaving bool
	// seq is the PING that confirms the SUBSCRIBE; 0 until subscribeLoop
	// has sent them.
	seq   uint64
	ready chan struct{} // closed when subscribed
	used  time.Time     // when a chat with a connection here last needed it
}

// heldAck is a barrier's answer held until the PING seq is answered.
type heldAck struct {
	seq     uint64
	payload []byte
}

// pingPrefix marks the PINGs that confirm shard subscriptions (the
// keep-alive PING has none).
const pingPrefix = "shards:"

func parsePing(payload string) (uint64, bool) {
	rest, ok := strings.CutPrefix(payload, pingPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

// shardOf returns the shard of a chat.
func (b *Redis) shardOf(chatID int64) int {
	return int(uint64(chatID) % uint64(b.nshards))
}

// shardChannel returns the name of a shard's channel.
func (b *Redis) shardChannel(n int) string {
	return b.opt.Prefix + "c:" + strconv.Itoa(n)
}

// channelFor chooses the channel of an event. What only matters to the
// nodes with a connection in the chat — its messages, edits, deletes,
// system messages, typing, new epochs, and what is addressed to some of
// its members (a read marker, a member's own settings: every connection
// of a member is subscribed to the chat, so its node hears the shard) —
// goes to the chat's shard. What a node with no connection in the chat
// may need goes to the control channel every node reads: membership
// changes (a member just added has no connection in the chat yet), events
// addressed to users and no chat (changed keys), and events that make
// every node forget what it cached.
func (b *Redis) channelFor(ev chat.Event) string {
	if ev.ChatID == 0 || ev.Membership != "" || ev.Forget {
		return b.channel
	}
	return b.shardChannel(b.shardOf(ev.ChatID))
}

// newSubscription makes the subscription to the control channel; its
// confirmation (the first of a connection) starts the shards' again
// (resubscribeShards).
func (b *Redis) newSubscription(ctx context.Context) *redis.PubSub {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.ps = b.rdb.Subscribe(ctx, b.channel)
	return b.ps
}

// Await makes this node subscribe the shards of chats that have just got
// a connection here, and waits until Redis has confirmed them (at most
// AwaitTimeout, and not at all while Redis is away), so that every event
// published after it returns reaches this node. The hub calls it before a
// new connection's hello and before a sync: whatever commits after the
// client has been told it is connected, or after its sync has read the
// database, is heard here.
func (b *Redis) Await(ctx context.Context, chatIDs []int64) {
	waits := b.want(chatIDs)
	if len(waits) == 0 || !b.up.Load() {
		return
	}
	t := time.NewTimer(AwaitTimeout)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// want marks the chats' shards as needed, starts subscribing those that
// are not, and returns what to wait on for those not yet confirmed.
func (b *Redis) want(chatIDs []int64) []chan struct{} {
	var waits []chan struct{}
	wake := false
	now := time.Now()
	b.subMu.Lock()
	for _, id := range chatIDs {
		n := b.shardOf(id)
		s := b.shards[n]
		if s == nil {
			s = &shard{ready: make(chan struct{})}
			b.shards[n] = s
			wake = true
		}
		s.used = now
		if s.leaving {
			// Not yet unsubscribed: keep it. (If the UNSUBSCRIBE has gone,
			// the shard is no longer in the map and is made afresh above.)
			s.leaving = false
		}
		if !s.subscribed && !slices.Contains(waits, s.ready) {
			waits = append(waits, s.ready)
		}
	}
	b.subMu.Unlock()
	if wake {
		b.wakeSubscriber()
	}
	return waits
}

func (b *Redis) wakeSubscriber() {
	select {
	case b.subscribeNow <- struct{}{}:
	default:
	}
}

// subscribeLoop sends the subscription's commands, one after another so
// that Redis sees them in the order the shards' states changed: the
// UNSUBSCRIBEs of shards left idle, the SUBSCRIBEs of shards needed, and
// after them a PING whose answer confirms the SUBSCRIBEs (a connection's
// replies come in the order of its commands, so when the PING is answered
// every earlier command has taken effect).
func (b *Redis) subscribeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.subscribeNow:
		}
		var sub, unsub []string
		var gone []int
		b.subMu.Lock()
		ps := b.ps
		seq := b.pingSeq + 1
		for n, s := range b.shards {
			switch {
			case s.leaving:
				unsub = append(unsub, b.shardChannel(n))
				gone = append(gone, n)
				delete(b.shards, n)
			case !s.subscribed && s.seq == 0:
				sub = append(sub, b.shardChannel(n))
				s.seq = seq
			}
		}
		if len(sub) > 0 {
			b.pingSeq = seq
		}
		b.subMu.Unlock()
		if ps == nil {
			continue
		}
		if len(gone) > 0 {
			ps.Unsubscribe(ctx, unsub...)
			b.forgetShards(gone)
		}
		if len(sub) > 0 {
			// A failed write makes the client connect again, and the new
			// connection's first confirmation resubscribes every shard
			// (resubscribeShards): nothing to retry here.
			ps.Subscribe(ctx, sub...)
			ps.Ping(ctx, pingPrefix+strconv.FormatUint(seq, 10))
			b.count(func(s *RedisStats) { s.ShardSubscribes += int64(len(sub)) })
		}
	}
}

// resubscribeShards starts every shard again on a new connection. The
// client has sent SUBSCRIBE for those it knew; subscribeLoop sends them
// all again (a repeat is harmless) with a new PING, whose answer confirms
// them and fills their chats.
func (b *Redis) resubscribeShards() {
	b.subMu.Lock()
	for _, s := range b.shards {
		if s.subscribed {
			s.subscribed = false
			s.ready = make(chan struct{})
		}
		// A shard leaving is dropped by subscribeLoop as before.
		s.seq = 0
	}
	b.subMu.Unlock()
	b.wakeSubscriber()
}

// confirmShards handles the answer to PING seq: every shard subscribed
// with it or before is now subscribed. Their chats with a connection here
// are filled from the database from their lines (or the connections'
// floor): an event published before Redis took the SUBSCRIBE did not come
// here. Then the barrier answers held for them go out.
func (b *Redis) confirmShards(ctx context.Context, seq uint64) {
	confirmed := make(map[int]bool)
	b.subMu.Lock()
	for n, s := range b.shards {
		if !s.subscribed && s.seq != 0 && s.seq <= seq {
			s.subscribed = true
			close(s.ready)
			confirmed[n] = true
		}
	}
	b.subMu.Unlock()
	if len(confirmed) > 0 {
		b.mu.RLock()
		h := b.hub
		b.mu.RUnlock()
		if h != nil {
			var ids []int64
			for _, id := range h.LiveChats() {
				if confirmed[b.shardOf(id)] {
					ids = append(ids, id)
				}
			}
			b.fillChats(ctx, ids)
		}
	}
	held := b.acks[:0]
	for _, a := range b.acks {
		if a.seq <= seq {
			b.sendAck(a.payload)
		} else {
			held = append(held, a)
		}
	}
	b.acks = held
}

// answerBarrier answers a barrier at once, or once the shards being
// subscribed now are, if any: a membership change is answered only when
// every node with a connection of a new member hears the chat.
func (b *Redis) answerBarrier(payload []byte) {
	b.subMu.Lock()
	var wait uint64
	for _, s := range b.shards {
		switch {
		case s.subscribed || s.leaving:
		case s.seq != 0:
			wait = max(wait, s.seq) // sent with this PING
		default:
			wait = max(wait, b.pingSeq+1) // to be sent with the next
		}
	}
	b.subMu.Unlock()
	if wait == 0 {
		b.sendAck(payload)
		return
	}
	b.acks = append(b.acks, heldAck{seq: wait, payload: payload})
}

func (b *Redis) sendAck(payload []byte) {
	select {
	case b.out <- outItem{channel: b.channel, payload: payload}:
	default:
	}
}

// joined follows a membership event that added users to a chat: if the
// chat has a connection here (the new members' own, subscribed by the
// hub just now), its shard is subscribed, and its line starts no later
// than the change's first message (the event's Prev), so that the new
// members' connections get the change's system messages and what follows
// even when they arrive before the shard is subscribed (by its fill).
func (b *Redis) joined(ev chat.Event) {
	if !b.live(ev.ChatID) {
		return
	}
	b.want([]int64{ev.ChatID})
	if ev.Prev <= 0 {
		return
	}
	l, fresh := b.line(ev.ChatID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if fresh || ev.Prev < l.last {
		l.last = ev.Prev
		if f, ok := b.floor(ev.ChatID); fresh && ok && f < l.last {
			l.last = f
		}
	}
}

// sweepShards marks the shards of chats with a connection here as used,
// and those unused for ShardIdle to be unsubscribed.
func (b *Redis) sweepShards() {
	b.mu.RLock()
	h := b.hub
	b.mu.RUnlock()
	if h == nil {
		return
	}
	live := h.LiveChats()
	inUse := make(map[int]bool, len(live))
	for _, id := range live {
		inUse[b.shardOf(id)] = true
	}
	now := time.Now()
	wake := false
	b.subMu.Lock()
	for n, s := range b.shards {
		switch {
		case inUse[n]:
			s.used = now
			s.leaving = false
		case s.subscribed && !s.leaving && now.Sub(s.used) >= b.opt.ShardIdle:
			s.leaving = true
			wake = true
		}
	}
	b.subMu.Unlock()
	if wake {
		b.wakeSubscriber()
	}
}

// forgetShards drops the lines of the chats of shards no longer
// subscribed: their events no longer come here, so a chat that gets a
// connection again starts from its connections' floor.
func (b *Redis) forgetShards(gone []int) {
	set := make(map[int]bool, len(gone))
	for _, n := range gone {
		set[n] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.lines {
		if set[b.shardOf(id)] {
			delete(b.lines, id)
		}
	}
}

// subscribedShards counts the shards Redis has confirmed.
func (b *Redis) subscribedShards() int {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	n := 0
	for _, s := range b.shards {
		if s.subscribed {
			n++
		}
	}
	return n
}

// Shards returns the shard channels this node is subscribed to, for tests
// and the debug page.
func (b *Redis) Shards() []string {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	var out []string
	for n, s := range b.shards {
		if s.subscribed {
			out = append(out, b.shardChannel(n))
		}
	}
	return out
}
