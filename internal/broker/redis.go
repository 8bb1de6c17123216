package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/redis/go-redis/v9"
)

// Source is where the Redis broker reads back what pub/sub lost: the
// database every node commits to.
type Source interface {
	// After returns up to limit committed events of a chat after an id,
	// oldest first, encoded as they were published.
	After(ctx context.Context, chatID, after int64, limit int) ([]chat.Event, error)
	// NewestByChat returns the newest message id of every chat with a
	// message after an id.
	NewestByChat(ctx context.Context, after int64) (map[int64]int64, error)
}

// Hub is what the Redis broker asks of the local hub.
type Hub interface {
	// LiveChats returns the chats with a connection on this node.
	LiveChats() []int64
	// Live reports whether a chat has a connection on this node.
	Live(chatID int64) bool
	// Floor returns the lowest message id of a chat that every live
	// connection here has been sent, if any connection knows one.
	Floor(chatID int64) (int64, bool)
}

// RedisOptions configure a Redis broker.
type RedisOptions struct {
	URL    string // redis:// or rediss://, as config checked it
	Prefix string // of the channel's name
	Log    *slog.Logger
	// Forget, if set, drops what this node caches of chats and of users'
	// chat lists, for events that follow another node's change
	// (chat.Event.Forget).
	Forget func(userIDs []int64, chatIDs ...int64)
	// Recheck, if set, is called (in its own goroutine, never two at once)
	// whenever this node may have missed events — its subscription was
	// made again, or another node could not publish — after the chats are
	// filled: membership changes carry no line to fill, so the node drops
	// its cache and checks its connections' chats against the database.
	Recheck func(ctx context.Context)
	// Metrics time what the broker does; nil fields time nothing.
	Metrics Metrics
	// OutQueue is how many events may wait to be published to Redis;
	// beyond it they are dropped, and the other nodes told to fill from
	// the database (0: 65536).
	OutQueue int
	// Shards is how many channels carry the chats' events (0:
	// DefaultShards); every node of an installation must use the same.
	Shards int
	// ShardIdle is how long a shard's channel stays subscribed after this
	// node's last connection in its chats has gone (0: DefaultShardIdle).
	ShardIdle time.Duration
	// ReorderWait is how long a message that arrived before one it follows
	// waits for that one to arrive from Redis too, before the missing ones
	// are read from the database (0: DefaultReorderWait).
	ReorderWait time.Duration
}

// DefaultReorderWait: two nodes that commit one after the other into a
// chat publish in the other order now and then, a few milliseconds apart
// (each publishes from its own queue). Waiting that long for the first
// costs less than a database read, and the read blocked nothing else.
const DefaultReorderWait = 50 * time.Millisecond

// maxHeld bounds what a chat's line holds while it waits: beyond it a
// message is dropped and the chat left to the retry loop's fill, and an
// event without a message id goes out at once.
const maxHeld = 1024

// Metrics are the broker's timings (its counts are RedisStats).
type Metrics struct {
	// PublishSeconds observes each pipeline of publishes to Redis, from
	// its send to its last reply.
	PublishSeconds interface{ Observe(float64) }
}

// Redis is the broker of a node among several: it delivers each event to
// this node's hub at once and publishes it to Redis, from where every
// other node delivers it to its own. Redis pub/sub is at-most-once and
// nodes commit concurrently, so the committed messages of each chat pass
// a per-chat line that delivers them in id order, fills from the Source
// what did not arrive, and drops what was already delivered. See
// ARCHITECTURE.md, "Several nodes".
type Redis struct {
	opt     RedisOptions
	log     *slog.Logger
	rdb     *redis.Client
	channel string // the control channel every node reads
	node    string // this process, so it skips its own events coming back
	nshards int

	// subMu guards the subscription: ps (replaced when the connection is
	// given up), the shards this node subscribes, and pingSeq. Lock order:
	// subMu before mu; a line's mu is never held while subMu is taken.
	subMu   sync.Mutex
	ps      *redis.PubSub
	shards  map[int]*shard
	pingSeq uint64
	// subscribeNow wakes subscribeLoop.
	subscribeNow chan struct{}
	// acks are barrier answers held until the shards being subscribed when
	// the barrier arrived are subscribed (receiveLoop only).
	acks []heldAck

	mu      sync.RWMutex
	deliver func(chat.Event)
	hub     Hub
	source  Source
	lines   map[int64]*line

	out      chan outItem
	barriers sync.Map    // barrier id → *barrier, while waited for
	lostOut  atomic.Bool // an event was not published: tell the others to fill
	up       atomic.Bool // subscribed, and the last publish went through
	since    atomic.Int64
	stuck    sync.Map // chat id → struct{}: a fill failed, retry
	// rechecking is set while a Recheck runs, and recheckAgain when one
	// was asked for meanwhile.
	rechecking, recheckAgain atomic.Bool
	stats                    RedisStats
	statsMu                  sync.Mutex
	pageSize                 int
}

// line is one chat's delivery on this node: the highest message id
// delivered (or known to be delivered by the connections' own sync), and,
// while a message before the next one is missing, the chat's events that
// arrived meanwhile, held in order until it arrives or is read from the
// database. mu is never held across a database read by the fill after a
// wait (fillHeld), so the receive loop never waits for one; the fills of
// a resync and of the retry loop do hold it.
type line struct {
	mu      sync.Mutex
	last    int64
	held    []chat.Event // arrival order, but messages by id among themselves
	timer   *time.Timer  // fires fillHeld; set while held is not empty
	filling bool         // fillHeld is reading: everything arriving is held
}

// RedisStats are the Redis broker's counters since the start.
type RedisStats struct {
	State      string `json:"state"` // "up" or "down"
	Reconnects int64  `json:"reconnects"`
	GapsFilled int64  `json:"gaps_filled"`
	// Reordered counts gaps closed by the missing message arriving from
	// Redis within ReorderWait: no database read.
	Reordered   int64 `json:"gaps_reordered"`
	Replayed    int64 `json:"events_replayed"` // events read back from the database
	Duplicates  int64 `json:"duplicates_dropped"`
	Published   int64 `json:"published"`
	PublishLost int64 `json:"publish_lost"` // not published; the other nodes filled instead
	// PublishErrors counts pipelines of publishes that failed.
	PublishErrors int64 `json:"publish_errors"`
	Received      int64 `json:"received"`
	// SubscribedShards is how many shard channels this node is subscribed
	// to now; ShardSubscribes counts shard subscriptions made since the
	// start.
	SubscribedShards int64  `json:"subscribed_shards"`
	ShardSubscribes  int64  `json:"shard_subscribes"`
	Resyncs          int64  `json:"resyncs"`
	DownSince        string `json:"down_since,omitempty"`
	ResyncFailed     int64  `json:"resync_failed"`
	// BarrierFailed counts membership changes not confirmed by every
	// node in time (Barrier).
	BarrierFailed int64 `json:"barrier_failed"`
}

var _ chat.Broker = (*Redis)(nil)

// clientLog routes the Redis client's own log lines (reconnect attempts) to
// slog at debug level: the broker logs each change of state itself, once.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// NewRedis returns a Redis broker; Run connects it.
func NewRedis(o RedisOptions) (*Redis, error) {
	redis.SetLogger(clientLog{o.Log})
	ropt, err := redis.ParseURL(o.URL)
	if err != nil {
		// ParseURL's errors may quote the URL, password and all.
		return nil, errors.New("broker: REDIS_URL does not parse as a Redis URL")
	}
	ropt.ClientName = "mapsim-chat"
	ropt.DialTimeout = 2 * time.Second
	ropt.ReadTimeout = 3 * time.Second
	ropt.WriteTimeout = 3 * time.Second
	// -1: none (go-redis reads 0 as its default of 3). A failed publish is
	// told to the others as a fill, not retried out of order.
	ropt.MaxRetries = -1
	if o.OutQueue <= 0 {
		o.OutQueue = 65536
	}
	if o.Shards <= 0 {
		o.Shards = DefaultShards
	}
	if o.ShardIdle <= 0 {
		o.ShardIdle = DefaultShardIdle
	}
	if o.ReorderWait <= 0 {
		o.ReorderWait = DefaultReorderWait
	}
	id := make([]byte, 8)
	rand.Read(id)
	b := &Redis{
		opt: o, log: o.Log, rdb: redis.NewClient(ropt),
		channel:      o.Prefix + "events",
		node:         hex.EncodeToString(id),
		nshards:      o.Shards,
		shards:       make(map[int]*shard),
		lines:        make(map[int64]*line),
		subscribeNow: make(chan struct{}, 1),
		out:          make(chan outItem, o.OutQueue),
		pageSize:     256,
	}
	b.since.Store(time.Now().UnixNano())
	return b, nil
}

// Client is the Redis client, for the other state the nodes share.
func (b *Redis) Client() *redis.Client { return b.rdb }

// Node is this process's id among the nodes, new at each start.
func (b *Redis) Node() string { return b.node }

// Subscribe sets the receiver of events (the hub's).
func (b *Redis) Subscribe(deliver func(chat.Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deliver = deliver
}

// Attach gives the broker where to read what it must fill and the hub it
// fills for; call it before Run (they are made after the broker, as they
// publish through it).
func (b *Redis) Attach(src Source, h Hub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.source, b.hub = src, h
}

// Up reports whether the broker is subscribed and publishing.
func (b *Redis) Up() bool { return b.up.Load() }

// Stats returns the broker's counters.
func (b *Redis) Stats() RedisStats {
	b.statsMu.Lock()
	s := b.stats
	b.statsMu.Unlock()
	s.SubscribedShards = int64(b.subscribedShards())
	s.State = "down"
	if b.up.Load() {
		s.State = "up"
	} else {
		s.DownSince = time.Unix(0, b.since.Load()).UTC().Format(time.RFC3339)
	}
	return s
}

func (b *Redis) count(f func(*RedisStats)) {
	b.statsMu.Lock()
	f(&b.stats)
	b.statsMu.Unlock()
}

// Run subscribes and publishes until ctx ends. Redis being away is no
// error: the node goes on alone, and fills from the database when Redis is
// back.
func (b *Redis) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); b.publishLoop(ctx) }()
	go func() { defer wg.Done(); b.receiveLoop(ctx) }()
	go func() { defer wg.Done(); b.subscribeLoop(ctx) }()
	go func() { defer wg.Done(); b.retryLoop(ctx) }()
	wg.Wait()
	b.rdb.Close()
}

// Publish delivers the event on this node at once and queues it for the
// others, on the channel of the nodes that need it (Redis.channelFor). It
// never waits for Redis.
func (b *Redis) Publish(_ context.Context, ev chat.Event) error {
	b.handle(ev)
	select {
	case b.out <- outItem{channel: b.channelFor(ev), payload: encode(b.node, ev)}:
	default:
		b.lostOut.Store(true)
		b.count(func(s *RedisStats) { s.PublishLost++ })
	}
	return nil
}

// envelope is the header of an event on the channel; the frame follows it
// after a newline, as it was encoded (once) for the clients.
type envelope struct {
	Node       string  `json:"n"`
	ChatID     int64   `json:"c,omitempty"`
	MessageID  int64   `json:"m,omitempty"`
	Prev       int64   `json:"p,omitempty"`
	SkipUserID int64   `json:"s,omitempty"`
	UserIDs    []int64 `json:"u,omitempty"`
	Membership string  `json:"k,omitempty"`
	Forget     bool    `json:"f,omitempty"`
	// Resync asks every node to fill its chats from the database: the
	// sender lost events it could not publish.
	Resync bool `json:"r,omitempty"`
	// Barrier asks every node to answer with Ack once it has handled the
	// events published before it (see Redis.Barrier).
	Barrier string `json:"b,omitempty"`
	Ack     string `json:"a,omitempty"`
}

// outItem is a payload queued for a channel; a barrier's is told how
// many nodes received it.
type outItem struct {
	channel string
	payload []byte
	barrier *barrier
}

// barrier is one Redis.Barrier call: the nodes that received it, and
// those that have answered.
type barrier struct {
	mu       sync.Mutex
	expected int // -1 until the publish is answered
	acked    map[string]struct{}
	done     chan struct{}
	closed   bool
	err      error
}

func (br *barrier) settle(err error) {
	if !br.closed {
		br.closed, br.err = true, err
		close(br.done)
	}
}

// publishedTo records how many other nodes received the barrier.
func (br *barrier) publishedTo(n int) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.expected = n
	if len(br.acked) >= n {
		br.settle(nil)
	}
}

func (br *barrier) ack(node string) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.acked[node] = struct{}{}
	if br.expected >= 0 && len(br.acked) >= br.expected {
		br.settle(nil)
	}
}

func (br *barrier) fail(err error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.settle(err)
}

// BarrierTimeout bounds Barrier: a node that has not answered by then is
// cut off from Redis or stuck, and fills from the database when it is back.
const BarrierTimeout = 3 * time.Second

// Barrier returns once every other node has handled every event this node
// published before the call: it publishes a marker behind them, and each
// node that receives it — Redis says how many did — answers once it has
// handled what came before (events of one publisher arrive in order, and
// each node handles them one after another). It fails when Redis is away
// or a node has not answered within BarrierTimeout. A membership change
// waits for it before it is acknowledged, so that no node still delivers
// to a removed member, or lets one send, from what it had cached.
func (b *Redis) Barrier(ctx context.Context) error {
	if !b.up.Load() {
		b.count(func(s *RedisStats) { s.BarrierFailed++ })
		return errors.New("broker: Redis is away; the other nodes catch up when it is back")
	}
	idb := make([]byte, 8)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	br := &barrier{expected: -1, acked: make(map[string]struct{}), done: make(chan struct{})}
	b.barriers.Store(id, br)
	defer b.barriers.Delete(id)
	head, _ := json.Marshal(envelope{Node: b.node, Barrier: id})
	select {
	case b.out <- outItem{channel: b.channel, payload: append(head, '\n'), barrier: br}:
	default:
		b.count(func(s *RedisStats) { s.BarrierFailed++ })
		return errors.New("broker: the queue to Redis is full")
	}
	t := time.NewTimer(BarrierTimeout)
	defer t.Stop()
	var err error
	select {
	case <-br.done:
		err = br.err
	case <-t.C:
		err = fmt.Errorf("broker: not every node answered within %v", BarrierTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.count(func(s *RedisStats) { s.BarrierFailed++ })
	}
	return err
}

func encode(node string, ev chat.Event) []byte {
	h, _ := json.Marshal(envelope{Node: node, ChatID: ev.ChatID, MessageID: ev.MessageID, Prev: ev.Prev,
		SkipUserID: ev.SkipUserID, UserIDs: ev.UserIDs, Membership: ev.Membership, Forget: ev.Forget})
	buf := make([]byte, 0, len(h)+1+len(ev.Frame))
	buf = append(buf, h...)
	buf = append(buf, '\n')
	return append(buf, ev.Frame...)
}

func decode(payload string) (envelope, []byte, error) {
	head, frame, ok := strings.Cut(payload, "\n")
	var env envelope
	if !ok {
		return env, nil, errors.New("no header")
	}
	if err := json.Unmarshal([]byte(head), &env); err != nil {
		return env, nil, err
	}
	return env, []byte(frame), nil
}

// publishLoop sends queued events to Redis in pipelines, in queue order:
// a pipeline's replies have all come back before the next is sent, so
// Redis sees them in order. When events were lost (a full queue, Redis
// away), the next pipeline starts with a resync notice.
func (b *Redis) publishLoop(ctx context.Context) {
	const maxBatch = 512
	batch := make([]outItem, 0, maxBatch)
	barriers := make(map[*barrier]*redis.IntCmd)
	backoff := 50 * time.Millisecond
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			b.drain()
			return
		case p := <-b.out:
			batch = append(batch, p)
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case p := <-b.out:
				batch = append(batch, p)
			default:
				break gather
			}
		}
		lost := b.lostOut.Swap(false)
		pipe := b.rdb.Pipeline()
		if lost {
			notice, _ := json.Marshal(envelope{Node: b.node, Resync: true})
			pipe.Publish(ctx, b.channel, append(notice, '\n'))
		}
		clear(barriers)
		for _, p := range batch {
			cmd := pipe.Publish(ctx, p.channel, p.payload)
			if p.barrier != nil {
				barriers[p.barrier] = cmd
			}
		}
		sent := time.Now()
		_, err := pipe.Exec(ctx)
		if b.opt.Metrics.PublishSeconds != nil {
			b.opt.Metrics.PublishSeconds.Observe(time.Since(sent).Seconds())
		}
		for br, cmd := range barriers {
			if err != nil {
				br.fail(err)
			} else {
				br.publishedTo(int(cmd.Val()) - 1) // every subscriber but this node
			}
		}
		if err != nil {
			b.lostOut.Store(true)
			b.count(func(s *RedisStats) { s.PublishLost += int64(len(batch)); s.PublishErrors++ })
			b.setDown(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		b.count(func(s *RedisStats) { s.Published += int64(len(batch)) })
	}
}

// drain publishes what is still queued at shutdown (the sequencer has
// published its last commits by then), within a short time.
func (b *Redis) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for {
		select {
		case p := <-b.out:
			pipe.Publish(ctx, p.channel, p.payload)
			continue
		default:
		}
		break
	}
	if pipe.Len() > 0 {
		pipe.Exec(ctx)
	}
}

// setDown records that Redis is away, logging the change once.
func (b *Redis) setDown(err error) {
	if b.up.Swap(false) {
		b.since.Store(time.Now().UnixNano())
		b.log.Warn("broker: Redis unreachable; messages commit and reach this node's connections, the other nodes catch up when it is back",
			"err", redactErr(err))
	}
}

// redactErr keeps a Redis error's kind but not its text when the text may
// carry the URL (and its password).
func redactErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) {
		return err.Error()
	}
	s := err.Error()
	if strings.Contains(s, "@") {
		return "redis error (details withheld: they may hold the password)"
	}
	return s
}

// receiveLoop reads the subscription: the control channel and the shards
// this node subscribes. Every control-channel confirmation — the first,
// and each after a reconnect — starts with a fill of this node's chats
// from the database, as events may have been lost meanwhile; each shard
// confirmation (Redis.confirmShards) fills that shard's chats.
func (b *Redis) receiveLoop(ctx context.Context) {
	// quiet is how long the subscription may stay silent before a ping;
	// a connection that has answered nothing, not even a ping, for
	// deadAfter is given up and made again (a partition that leaves the
	// socket open).
	const quiet, deadAfter = 2 * time.Second, 7 * time.Second
	ps := b.newSubscription(ctx)
	defer func() { ps.Close() }()
	backoff := 50 * time.Millisecond
	subscribed := false
	heard := time.Now()
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, quiet)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(heard) < deadAfter {
				// A failed ping shows up as the next Receive's error.
				ps.Ping(ctx)
				continue
			}
			b.setDown(err)
			if time.Since(heard) >= deadAfter {
				ps.Close()
				ps = b.newSubscription(ctx)
				heard = time.Now()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		heard = time.Now()
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if m.Count == 1 {
				// The first channel of a new connection (the control
				// channel is never given up, so an old one counts more):
				// whatever the shards were, they are subscribed again.
				b.resubscribeShards()
			}
			if m.Channel != b.channel {
				continue
			}
			if subscribed {
				b.count(func(s *RedisStats) { s.Reconnects++ })
			}
			b.up.Store(true)
			b.log.Info("broker: subscribed to Redis", "channel", b.channel, "reconnect", subscribed)
			subscribed = true
			b.resync(ctx)
		case *redis.Pong:
			if seq, ok := parsePing(m.Payload); ok {
				b.confirmShards(ctx, seq)
			}
		case *redis.Message:
			b.count(func(s *RedisStats) { s.Received++ })
			b.received(ctx, m.Payload)
		}
	}
}

// received handles one payload from the channel.
func (b *Redis) received(ctx context.Context, payload string) {
	env, frame, err := decode(payload)
	if err != nil {
		b.log.Error("broker: undecodable event on the channel", "channel", b.channel, "err", err)
		return
	}
	if env.Node == b.node {
		return // delivered here when it was published
	}
	if env.Resync {
		b.resync(ctx)
		return
	}
	if env.Barrier != "" {
		// Everything the sender published before it has been handled; the
		// answer waits until the shards this node began to subscribe
		// meanwhile (for a member just added here) are subscribed.
		ack, _ := json.Marshal(envelope{Node: b.node, Ack: env.Barrier})
		b.answerBarrier(append(ack, '\n'))
		return
	}
	if env.Ack != "" {
		if br, ok := b.barriers.Load(env.Ack); ok {
			br.(*barrier).ack(env.Node)
		}
		return
	}
	if env.Forget && b.opt.Forget != nil {
		b.opt.Forget(env.UserIDs, env.ChatID)
	}
	b.handle(chat.Event{ChatID: env.ChatID, MessageID: env.MessageID, Prev: env.Prev, SkipUserID: env.SkipUserID,
		UserIDs: env.UserIDs, Membership: env.Membership, Forget: env.Forget, Frame: frame})
}

// handle delivers one event to the local hub. A committed message goes
// through its chat's line: delivered if it follows what was delivered,
// dropped if it was delivered already, and held if a message before it is
// missing — until that one arrives, or for ReorderWait, after which the
// missing ones are read from the database. While a chat's line holds
// anything, every event of that chat is held behind it, so none overtakes
// a message it was published after.
func (b *Redis) handle(ev chat.Event) {
	b.mu.RLock()
	deliver := b.deliver
	b.mu.RUnlock()
	if deliver == nil {
		return
	}
	if !sequenced(ev) {
		if ev.ChatID != 0 && b.holdBehind(ev) {
			return
		}
		deliver(ev)
		if ev.Membership == chat.MembershipJoin {
			b.joined(ev)
		}
		return
	}
	l, fresh := b.line(ev.ChatID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if fresh {
		// Start from what the connections here have been sent; with none
		// knowing, nobody here can miss anything before this event.
		l.last = ev.Prev
		if f, ok := b.floor(ev.ChatID); ok && f < ev.Prev {
			l.last = f
		}
	}
	if ev.MessageID <= l.last {
		b.count(func(s *RedisStats) { s.Duplicates++ })
		return
	}
	if len(l.held) > 0 || l.filling {
		b.hold(l, ev)
		if !l.filling && b.release(l, ev.ChatID, deliver) {
			b.count(func(s *RedisStats) { s.Reordered++ })
		}
		return
	}
	if ev.Prev > l.last && !b.live(ev.ChatID) {
		// Nobody here to fill for: a connection that comes now syncs
		// from the database or starts live from here.
		l.last = ev.MessageID
		return
	}
	if ev.Prev > l.last {
		b.hold(l, ev)
		return
	}
	deliver(ev)
	l.last = ev.MessageID
}

// sequenced reports whether an event goes through its chat's line: a
// committed message, edit, delete or system message, not addressed to
// particular users.
func sequenced(ev chat.Event) bool {
	return ev.MessageID != 0 && len(ev.UserIDs) == 0
}

// deliverNewer delivers, in order, the events read from the database that
// follow what the line delivered. l.mu is held.
func (b *Redis) deliverNewer(l *line, evs []chat.Event, deliver func(chat.Event)) {
	for _, ev := range evs {
		if ev.MessageID > l.last {
			deliver(ev)
			l.last = ev.MessageID
		}
	}
	b.count(func(s *RedisStats) { s.Replayed += int64(len(evs)) })
}

// holdBehind holds an event that carries no message id behind what its
// chat's line holds, if it holds anything; false if it delivers at once.
func (b *Redis) holdBehind(ev chat.Event) bool {
	b.mu.RLock()
	l := b.lines[ev.ChatID]
	b.mu.RUnlock()
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.held) == 0 && !l.filling {
		return false
	}
	if len(l.held) < maxHeld {
		l.held = append(l.held, ev)
		return true
	}
	// Too much held: it goes out now rather than be dropped.
	return false
}

// hold adds a message to what the line holds: before the first held
// message with a higher id, else at the end, and starts the wait. A line
// that holds maxHeld already drops it: it is committed, and the retry
// loop's fill reads it back. l.mu is held.
func (b *Redis) hold(l *line, ev chat.Event) {
	if len(l.held) >= maxHeld {
		b.stuck.Store(ev.ChatID, struct{}{})
		return
	}
	at := len(l.held)
	for i, h := range l.held {
		if sequenced(h) && h.MessageID > ev.MessageID {
			at = i
			break
		}
	}
	l.held = slices.Insert(l.held, at, ev)
	b.arm(l, ev.ChatID)
}

// arm starts the wait of a line that holds something, unless it runs
// already, the line is being filled, or the chat is left to the retry
// loop (its database read failed). l.mu is held.
func (b *Redis) arm(l *line, chatID int64) {
	if len(l.held) == 0 || l.timer != nil || l.filling {
		return
	}
	if _, stuck := b.stuck.Load(chatID); stuck {
		return
	}
	l.timer = time.AfterFunc(b.opt.ReorderWait, func() { b.fillHeld(chatID, l) })
}

// release delivers, in order, what the line holds that may go now: each
// held message that follows what was delivered (one delivered already is
// dropped), and each other event with no message still held before it.
// It stops at the first message still missing its predecessor, and waits
// for it (arm). When nothing is held any more, the wait ends and it
// reports whether it released anything. l.mu is held.
func (b *Redis) release(l *line, chatID int64, deliver func(chat.Event)) (emptied bool) {
	n := 0
	for _, ev := range l.held {
		if sequenced(ev) {
			if ev.MessageID <= l.last {
				b.count(func(s *RedisStats) { s.Duplicates++ })
				n++
				continue
			}
			if ev.Prev > l.last {
				break
			}
			deliver(ev)
			l.last = ev.MessageID
		} else {
			deliver(ev)
			if ev.Membership == chat.MembershipJoin {
				// joined takes subMu and the lines' lock, never this one.
				go b.joined(ev)
			}
		}
		n++
	}
	l.held = slices.Delete(l.held, 0, n)
	if len(l.held) > 0 {
		b.arm(l, chatID)
		return false
	}
	l.held = nil
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	return n > 0
}

// fillHeld runs when a line has waited ReorderWait for a missing message:
// it reads what is missing from the database, without holding the line
// while it reads (events arriving meanwhile are held), then delivers it
// and whatever was held behind it. A read that fails leaves the chat to
// the retry loop.
func (b *Redis) fillHeld(chatID int64, l *line) {
	b.mu.RLock()
	src, deliver := b.source, b.deliver
	b.mu.RUnlock()
	l.mu.Lock()
	l.timer = nil
	if len(l.held) == 0 || l.filling || src == nil || deliver == nil {
		l.mu.Unlock()
		return
	}
	l.filling = true
	from := l.last
	l.mu.Unlock()
	b.count(func(s *RedisStats) { s.GapsFilled++ })

	var err error
	for {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var evs []chat.Event
		evs, err = src.After(fctx, chatID, from, b.pageSize)
		cancel()
		if err != nil {
			break
		}
		l.mu.Lock()
		b.deliverNewer(l, evs, deliver)
		l.mu.Unlock()
		if len(evs) > 0 {
			from = evs[len(evs)-1].MessageID
		}
		if len(evs) < b.pageSize {
			break
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.filling = false
	if err != nil {
		// What is held waits for the retry loop's fill, which releases
		// it after the read.
		b.stuck.Store(chatID, struct{}{})
		b.log.Warn("broker: fill from the database failed; retrying", "chat_id", chatID, "err", err)
		return
	}
	// What arrived during the read with a gap before it again waits again.
	b.release(l, chatID, deliver)
}

func (b *Redis) floor(chatID int64) (int64, bool) {
	b.mu.RLock()
	h := b.hub
	b.mu.RUnlock()
	if h == nil {
		return 0, false
	}
	return h.Floor(chatID)
}

func (b *Redis) live(chatID int64) bool {
	b.mu.RLock()
	h := b.hub
	b.mu.RUnlock()
	return h == nil || h.Live(chatID)
}

// forgetIdle drops the lines of chats with no connection here (memory stays
// in proportion to the chats in use); such a chat starts again from its
// connections' floor when next needed, as after a resync.
func (b *Redis) forgetIdle() {
	b.mu.RLock()
	h := b.hub
	b.mu.RUnlock()
	if h == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.lines {
		if !h.Live(id) {
			delete(b.lines, id)
		}
	}
}

// line returns a chat's line, and whether it was just made.
func (b *Redis) line(chatID int64) (*line, bool) {
	b.mu.RLock()
	l := b.lines[chatID]
	b.mu.RUnlock()
	if l != nil {
		return l, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l = b.lines[chatID]; l != nil {
		return l, false
	}
	l = &line{}
	b.lines[chatID] = l
	return l, true
}

// fill delivers every committed event of the chat after l.last, in order,
// in pages, then what the line held behind them. l.mu is held.
func (b *Redis) fill(ctx context.Context, l *line, chatID int64, deliver func(chat.Event)) error {
	b.mu.RLock()
	src := b.source
	b.mu.RUnlock()
	if src == nil {
		return errors.New("broker: not attached")
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		evs, err := src.After(fctx, chatID, l.last, b.pageSize)
		cancel()
		if err != nil {
			return err
		}
		b.deliverNewer(l, evs, deliver)
		if len(evs) < b.pageSize {
			b.release(l, chatID, deliver)
			return nil
		}
	}
}

// resync fills every chat with a connection here from the database: run
// when the subscription is (re)established and when another node says it
// lost events. Lines of chats without connections here are forgotten;
// they start again from the connections' floor when next needed.
func (b *Redis) resync(ctx context.Context) {
	b.count(func(s *RedisStats) { s.Resyncs++ })
	defer b.recheck(ctx)
	b.mu.RLock()
	h := b.hub
	b.mu.RUnlock()
	if h == nil {
		return
	}
	live := h.LiveChats()
	liveSet := make(map[int64]struct{}, len(live))
	for _, id := range live {
		liveSet[id] = struct{}{}
	}
	b.mu.Lock()
	for id := range b.lines {
		if _, ok := liveSet[id]; !ok {
			delete(b.lines, id)
		}
	}
	b.mu.Unlock()
	b.fillChats(ctx, live)
}

// fillChats delivers, for each of the chats, every committed event after
// its line — a chat without one starts from its connections' floor, and is
// skipped if none of them knows where it is (each syncs or starts live).
// A few chats are read one by one; more, by first asking the database
// which of them have anything newer (NewestByChat, one range of the
// primary key).
func (b *Redis) fillChats(ctx context.Context, ids []int64) {
	b.mu.RLock()
	h, deliver, src := b.hub, b.deliver, b.source
	b.mu.RUnlock()
	if h == nil || deliver == nil || src == nil || len(ids) == 0 {
		return
	}
	from := int64(-1)
	type start struct {
		l    *line
		last int64
	}
	starts := make(map[int64]start, len(ids))
	for _, id := range ids {
		l, fresh := b.line(id)
		l.mu.Lock()
		if fresh {
			f, ok := h.Floor(id)
			if !ok {
				// Nobody here knows where they are: each is syncing or
				// has been sent nothing of it. Forget the line again.
				l.mu.Unlock()
				b.mu.Lock()
				delete(b.lines, id)
				b.mu.Unlock()
				continue
			}
			l.last = f
		}
		starts[id] = start{l, l.last}
		if from < 0 || l.last < from {
			from = l.last
		}
		l.mu.Unlock()
	}
	if from < 0 {
		return
	}
	var newest map[int64]int64
	if len(starts) > fewChats {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		newest, err = src.NewestByChat(nctx, from)
		cancel()
		if err != nil {
			b.count(func(s *RedisStats) { s.ResyncFailed++ })
			b.log.Warn("broker: reading what changed while Redis was away failed; retrying", "err", err)
			for id := range starts {
				b.stuck.Store(id, struct{}{})
			}
			return
		}
	}
	for id, st := range starts {
		if newest != nil && newest[id] <= st.last {
			continue
		}
		st.l.mu.Lock()
		if newest == nil || newest[id] > st.l.last {
			if err := b.fill(ctx, st.l, id, deliver); err != nil {
				b.stuck.Store(id, struct{}{})
			}
		}
		st.l.mu.Unlock()
	}
}

// fewChats is how many chats fillChats reads one by one rather than first
// asking which have anything new.
const fewChats = 8

// recheck runs RedisOptions.Recheck in the background, once at a time, and
// once more when asked again while it ran.
func (b *Redis) recheck(ctx context.Context) {
	if b.opt.Recheck == nil {
		return
	}
	b.recheckAgain.Store(true)
	if !b.rechecking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.rechecking.Store(false)
		for b.recheckAgain.Swap(false) && ctx.Err() == nil {
			b.opt.Recheck(ctx)
		}
	}()
}

// retryLoop fills, each second, the chats whose fill failed, every few
// seconds unsubscribes the shards left idle, and each minute forgets the
// lines no connection here needs.
func (b *Redis) retryLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// Shards left idle are looked for every few seconds, often enough for
	// a short ShardIdle.
	sweepEvery := max(1, min(5, int(b.opt.ShardIdle/(2*time.Second))))
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n%60 == 0 {
			b.forgetIdle()
		}
		if n%sweepEvery == 0 {
			b.sweepShards()
		}
		b.retryStuck(ctx)
	}
}

// retryStuck fills each chat whose fill failed, and releases what its line
// held behind the gap.
func (b *Redis) retryStuck(ctx context.Context) {
	b.mu.RLock()
	deliver := b.deliver
	b.mu.RUnlock()
	if deliver == nil {
		return
	}
	b.stuck.Range(func(k, _ any) bool {
		id := k.(int64)
		l, fresh := b.line(id)
		l.mu.Lock()
		defer l.mu.Unlock()
		if fresh {
			f, ok := b.floor(id)
			if !ok {
				b.stuck.Delete(id)
				return true
			}
			l.last = f
		}
		if err := b.fill(ctx, l, id, deliver); err == nil {
			b.stuck.Delete(id)
			// What it still holds (arrived after the read) waits again.
			b.arm(l, id)
		}
		return true
	})
}

// String describes the broker for logs, without the URL's password.
func (b *Redis) String() string {
	return fmt.Sprintf("redis broker (channel %s, node %s)", b.channel, b.node)
}
