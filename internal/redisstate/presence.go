package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence shares who is online among the nodes of an installation. Each
// node writes the users it holds (with a connection, or in their presence
// grace) to Redis, and reads the others':
//
//   - <prefix>presence:<node>:users, a hash of user id → username, and the
//     field "#seq", the number of changes written;
//   - <prefix>presence:<node>:log, a stream of those changes, each with its
//     sequence number, so a reader takes only what is new;
//   - <prefix>presence:<node>:alive, the node's heartbeat, holding its
//     epoch (a new one at each full rewrite), with a TTL;
//   - <prefix>presence:nodes, the set of node ids.
//
// Every key of a node expires with its heartbeat, so a node that dies
// (even kill -9) stops counting once the TTL has passed. The others then
// keep its users online for the presence grace more, as they do for a user
// whose last connection closed (most of a dead node's clients reconnect to
// another node within it), and then drop them: a dead node's users go
// offline within the TTL plus the grace (plus one poll).
//
// Readers poll every PollEvery: one round trip reads every node's
// heartbeat, and one more the new entries of the live nodes' logs. A gap
// in a log's sequence (it was trimmed), a new epoch or a node never seen
// make the reader load that node's whole hash instead. While Redis is
// away, a node keeps what it last read, and rewrites its own users in full
// when Redis answers again (a restarted Redis holds nothing).
type Presence struct {
	rdb    *redis.Client
	prefix string
	node   string
	o      PresenceOptions

	changes chan PresenceChange
	epoch   string // the writer's
	local   func() map[int64]string
	changed func([]PresenceChange)

	// The reader's state (its goroutine's alone): the other nodes as last
	// read, and how many of them hold each user.
	nodes   map[string]*remoteNode
	holders map[int64]int
	names   map[int64]string
	up      bool // the last poll went through (the reader's)
}

// PresenceChange is a user coming online or going offline: on this node
// (given to Set), or on the other nodes taken together (given to
// PresenceOptions.Changed: online when a first other node holds the user,
// offline when the last stops).
type PresenceChange struct {
	UserID   int64
	Username string
	Online   bool
}

// PresenceOptions configure Presence.
type PresenceOptions struct {
	Node string // this node's id, unique among the running nodes
	// TTL is how long a node's heartbeat holds; it beats every TTL/3.
	TTL time.Duration
	// Grace is how long a dead node's users stay online to the others.
	Grace time.Duration
	// PollEvery is how often the others' changes are read (0: 250 ms).
	PollEvery time.Duration
	Log       *slog.Logger
}

// Attach gives the presence where to read this node's users for a full
// rewrite (local) and whom to tell the other nodes' changes (changed, from
// one goroutine, in order); call it before Run.
func (p *Presence) Attach(local func() map[int64]string, changed func([]PresenceChange)) {
	p.local, p.changed = local, changed
}

// remoteNode is another node as last read.
type remoteNode struct {
	epoch string
	seq   int64
	last  string // the last log entry read
	users map[int64]string
	// deadSince is when its heartbeat was first found missing (zero while
	// alive); its users are dropped a grace later.
	deadSince time.Time
}

// maxLog bounds each node's log; a reader further behind reloads the hash.
const maxLog = 10000

// NewPresence returns the presence of one node; Run writes and reads it.
func NewPresence(rdb *redis.Client, prefix string, o PresenceOptions) *Presence {
	if o.PollEvery <= 0 {
		o.PollEvery = 250 * time.Millisecond
	}
	return &Presence{
		rdb: rdb, prefix: prefix, node: o.Node, o: o,
		changes: make(chan PresenceChange, 65536),
		nodes:   make(map[string]*remoteNode),
		holders: make(map[int64]int),
		names:   make(map[int64]string),
	}
}

func (p *Presence) key(node, what string) string {
	return p.prefix + "presence:" + node + ":" + what
}

// Set queues a change of this node's users; it never blocks. Changes of
// one user must be queued in the order they happened.
func (p *Presence) Set(c PresenceChange) {
	select {
	case p.changes <- c:
	default:
		// The writer is far behind (Redis away): it rewrites everything
		// from Local once it catches up.
		select {
		case p.changes <- PresenceChange{UserID: -1}:
		default:
		}
	}
}

// write applies changes to this node's hash and log, or, with reset,
// replaces the hash with users under a new epoch. It returns false when the
// node's heartbeat is not its own (expired, or Redis restarted): the caller
// rewrites in full.
var write = redis.NewScript(`
local alive, users, log, nodes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, epoch, node, reset = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if reset == '1' then
  redis.call('DEL', users, log)
  redis.call('HSET', users, '#seq', 0)
elseif redis.call('GET', alive) ~= epoch then
  return 0
end
for i = 5, #ARGV, 3 do
  if reset == '1' then
    redis.call('HSET', users, ARGV[i], ARGV[i+1])
  else
    if ARGV[i+2] == '1' then
      redis.call('HSET', users, ARGV[i], ARGV[i+1])
    else
      redis.call('HDEL', users, ARGV[i])
    end
    local seq = redis.call('HINCRBY', users, '#seq', 1)
    redis.call('XADD', log, 'MAXLEN', '~', ` + strconv.Itoa(maxLog) + `, '*', 's', seq, 'u', ARGV[i], 'n', ARGV[i+1], 'o', ARGV[i+2])
  end
end
redis.call('SET', alive, epoch, 'PX', ttl)
redis.call('PEXPIRE', users, ttl)
redis.call('PEXPIRE', log, ttl)
redis.call('SADD', nodes, node)
return 1`)

// load reads a node's heartbeat, hash and last log entry together.
var load = redis.NewScript(`
local e = redis.call('GET', KEYS[1])
if not e then return false end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {e, id, redis.call('HGETALL', KEYS[2])}`)

// Run writes this node's changes and heartbeat and reads the others' until
// ctx ends; at the end it removes this node's keys, so the others drop its
// users after the grace (its clients are reconnecting elsewhere).
func (p *Presence) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.writeLoop(ctx) }()
	go func() { defer wg.Done(); p.readLoop(ctx) }()
	wg.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.rdb.Del(dctx, p.key(p.node, "alive"), p.key(p.node, "users"), p.key(p.node, "log"))
	p.rdb.SRem(dctx, p.prefix+"presence:nodes", p.node)
}

func (p *Presence) writeLoop(ctx context.Context) {
	beat := time.NewTicker(p.o.TTL / 3)
	defer beat.Stop()
	reset := true
	var batch []PresenceChange
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
		case c := <-p.changes:
			batch = append(batch, c)
		gather:
			for len(batch) < 1000 {
				select {
				case c := <-p.changes:
					batch = append(batch, c)
				default:
					break gather
				}
			}
		}
		for _, c := range batch {
			if c.UserID < 0 {
				reset = true
			}
		}
		if reset {
			// Whatever is queued is in Local's answer already.
			for len(p.changes) > 0 {
				<-p.changes
			}
			batch = batch[:0]
		}
		for ctx.Err() == nil {
			ok, err := p.write(ctx, reset, batch)
			if err == nil && ok {
				reset = false
				break
			}
			if err == nil {
				reset = true // the heartbeat was lost: rewrite in full
				continue
			}
			// Redis is away: rewrite in full once it answers, since the
			// changes meanwhile were not written (and it may have restarted).
			reset = true
			for len(p.changes) > 0 {
				<-p.changes
			}
			batch = batch[:0]
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.o.PollEvery):
			}
		}
	}
}

func (p *Presence) write(ctx context.Context, reset bool, batch []PresenceChange) (bool, error) {
	flag := "0"
	if reset {
		flag = "1"
		b := make([]byte, 8)
		rand.Read(b)
		p.epoch = hex.EncodeToString(b)
		batch = batch[:0]
		for uid, name := range p.local() {
			batch = append(batch, PresenceChange{UserID: uid, Username: name, Online: true})
		}
	}
	args := make([]any, 0, 4+3*len(batch))
	args = append(args, p.o.TTL.Milliseconds(), p.epoch, p.node, flag)
	for _, c := range batch {
		on := "0"
		if c.Online {
			on = "1"
		}
		args = append(args, c.UserID, c.Username, on)
	}
	keys := []string{p.key(p.node, "alive"), p.key(p.node, "users"), p.key(p.node, "log"), p.prefix + "presence:nodes"}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := write.Run(wctx, p.rdb, keys, args...).Int()
	return n == 1, err
}

func (p *Presence) readLoop(ctx context.Context) {
	tick := time.NewTicker(p.o.PollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.poll(rctx, time.Now())
		cancel()
		if err != nil && ctx.Err() == nil && p.up {
			p.o.Log.Warn("presence: reading the other nodes from Redis failed; keeping what was last read", "err", err)
		}
		p.up = err == nil
	}
}

// poll reads the other nodes once and tells Changed what changed.
func (p *Presence) poll(ctx context.Context, now time.Time) error {
	ids, err := p.rdb.SMembers(ctx, p.prefix+"presence:nodes").Result()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(ids))
	var others []string
	for _, id := range ids {
		if id != p.node {
			others = append(others, id)
			seen[id] = true
		}
	}
	for id := range p.nodes {
		if !seen[id] {
			others = append(others, id)
		}
	}
	var changes []PresenceChange
	if len(others) > 0 {
		keys := make([]string, len(others))
		for i, id := range others {
			keys[i] = p.key(id, "alive")
		}
		epochs, err := p.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		var streams, from, reading []string
		for i, id := range others {
			epoch, _ := epochs[i].(string)
			n := p.nodes[id]
			switch {
			case epoch == "":
				if n == nil {
					p.rdb.SRem(ctx, p.prefix+"presence:nodes", id)
					continue
				}
				if n.deadSince.IsZero() {
					n.deadSince = now
				}
				if now.Sub(n.deadSince) >= p.o.Grace {
					changes = p.drop(id, n, changes)
					p.rdb.SRem(ctx, p.prefix+"presence:nodes", id)
				}
			case n == nil || n.epoch != epoch || !n.deadSince.IsZero():
				if changes, err = p.reload(ctx, id, changes); err != nil {
					return err
				}
			default:
				streams = append(streams, p.key(id, "log"))
				from = append(from, n.last)
				reading = append(reading, id)
			}
		}
		if len(streams) > 0 {
			res, err := p.rdb.XRead(ctx, &redis.XReadArgs{Streams: append(streams, from...), Count: maxLog, Block: -1}).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			byKey := make(map[string][]redis.XMessage, len(res))
			for _, s := range res {
				byKey[s.Stream] = s.Messages
			}
			for i, id := range reading {
				if changes, err = p.apply(ctx, id, p.nodes[id], byKey[streams[i]], changes); err != nil {
					return err
				}
			}
		}
	}
	if len(changes) > 0 && p.changed != nil {
		p.changed(changes)
	}
	return nil
}

// apply takes a node's new log entries; a gap reloads the node.
func (p *Presence) apply(ctx context.Context, id string, n *remoteNode, entries []redis.XMessage, changes []PresenceChange) ([]PresenceChange, error) {
	for _, e := range entries {
		seq, _ := strconv.ParseInt(str(e.Values["s"]), 10, 64)
		if seq != n.seq+1 {
			return p.reload(ctx, id, changes)
		}
		uid, _ := strconv.ParseInt(str(e.Values["u"]), 10, 64)
		if str(e.Values["o"]) == "1" {
			changes = p.hold(n, uid, str(e.Values["n"]), changes)
		} else {
			changes = p.release(n, uid, changes)
		}
		n.seq, n.last = seq, e.ID
	}
	return changes, nil
}

// reload replaces what is known of a node with its hash.
func (p *Presence) reload(ctx context.Context, id string, changes []PresenceChange) ([]PresenceChange, error) {
	v, err := load.Run(ctx, p.rdb, []string{p.key(id, "alive"), p.key(id, "users"), p.key(id, "log")}).Slice()
	if errors.Is(err, redis.Nil) {
		return changes, nil // gone meanwhile; the next poll sees it dead
	}
	if err != nil {
		return changes, err
	}
	if len(v) != 3 {
		return changes, errors.New("presence: unexpected answer to load")
	}
	fields, _ := v[2].([]any)
	users := make(map[int64]string, len(fields)/2)
	var seq int64
	for i := 0; i+1 < len(fields); i += 2 {
		k, val := str(fields[i]), str(fields[i+1])
		if k == "#seq" {
			seq, _ = strconv.ParseInt(val, 10, 64)
			continue
		}
		if uid, err := strconv.ParseInt(k, 10, 64); err == nil {
			users[uid] = val
		}
	}
	n := p.nodes[id]
	if n == nil {
		n = &remoteNode{users: make(map[int64]string)}
		p.nodes[id] = n
	}
	for uid := range n.users {
		if _, ok := users[uid]; !ok {
			changes = p.release(n, uid, changes)
		}
	}
	for uid, name := range users {
		changes = p.hold(n, uid, name, changes)
	}
	n.epoch, n.last, n.seq, n.deadSince = str(v[0]), str(v[1]), seq, time.Time{}
	return changes, nil
}

// drop forgets a dead node.
func (p *Presence) drop(id string, n *remoteNode, changes []PresenceChange) []PresenceChange {
	for uid := range n.users {
		changes = p.release(n, uid, changes)
	}
	delete(p.nodes, id)
	return changes
}

func (p *Presence) hold(n *remoteNode, uid int64, name string, changes []PresenceChange) []PresenceChange {
	if _, ok := n.users[uid]; ok {
		return changes
	}
	n.users[uid] = name
	p.holders[uid]++
	if p.holders[uid] == 1 {
		p.names[uid] = name
		changes = append(changes, PresenceChange{UserID: uid, Username: name, Online: true})
	}
	return changes
}

func (p *Presence) release(n *remoteNode, uid int64, changes []PresenceChange) []PresenceChange {
	name, ok := n.users[uid]
	if !ok {
		return changes
	}
	delete(n.users, uid)
	p.holders[uid]--
	if p.holders[uid] <= 0 {
		delete(p.holders, uid)
		delete(p.names, uid)
		changes = append(changes, PresenceChange{UserID: uid, Username: name, Online: false})
	}
	return changes
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
