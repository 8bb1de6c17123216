package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// client is one WebSocket connection of the run, kept across reconnects.
type client struct {
	b       *bench
	idx     int
	user    *user
	room    *room // nil when the scenario uses no rooms
	receive bool  // syncs its room and counts what arrives
	src     int   // index of its source address
	node    int   // index of the node (-url) it connects to

	mu         sync.Mutex
	ws         *wsConn
	gen        int  // connection generation: 1 for the first, +1 per reconnect
	up         bool // connected and past hello: may send
	cut        bool // closed by the tool on purpose: do not reconnect
	connecting bool // connect is running: it, not the reader, handles a failure
	lastID     int64
	got        bitset
	received   int64
	duplicates int64
	reordered  int64
	pending    map[int][]byte // unacked frames by sequence number, resent after a reconnect
	hello      chan struct{}  // closed at this generation's hello
	synced     chan struct{}  // closed at this generation's synced (for its room)
	readerDone chan struct{}  // closed when this generation's reader has stopped
	failed     bool           // never connected: left out of the accounting
	downAt     time.Time      // when it last went down unexpectedly, or was cut
	backAt     time.Time      // when it was last back and synced
	closeCode  websocket.StatusCode
	// writeSince is when trySend's write began (Unix ns; 0: none is
	// running), for the pacers' watchdog.
	writeSince atomic.Int64
}

// Read buffers for frames, shared by all readers.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readLimit allows the server's large frames: online_users lists every
// user online, so it grows with the number of connections.
const readLimit = 64 << 20

// connect opens a connection: ticket, WebSocket with resume=1, hello,
// resend of unacked messages, and, for a receiving client, sync of its room
// from the last id it holds. It returns once synced (or hello, for a client
// that does not receive).
func (c *client) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b := c.b
	// At most one live connection per client, and one connect at a time:
	// end any earlier connection first. While connecting, a reader that
	// sees its connection end leaves the retry to the caller.
	c.mu.Lock()
	if c.connecting {
		c.mu.Unlock()
		return errors.New("already connecting")
	}
	c.connecting = true
	old, oldDone := c.ws, c.readerDone
	c.cut, c.up = true, false
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.connecting = false
		c.mu.Unlock()
	}()
	if old != nil {
		old.CloseNow()
		<-oldDone
	}
	// A client of a killed node goes to another, as a balancer would
	// send it. (Written with the old reader gone and before the new one.)
	c.mu.Lock()
	if b.dead != nil && b.dead[c.node].Load() {
		c.node = b.aliveNode()
	}
	node := c.node
	c.mu.Unlock()
	tok, err := b.token(ctx, c.user)
	if err != nil {
		return err
	}
	nodeAPI := b.api
	if node < len(b.nodeAPI) {
		nodeAPI = b.nodeAPI[node]
	}
	t, err := nodeAPI.ticket(ctx, tok)
	if statusOf(err) == http.StatusUnauthorized {
		// A stale token from the token file: log in again.
		if tok, err = b.relogin(ctx, c.user); err == nil {
			t, err = nodeAPI.ticket(ctx, tok)
		}
	}
	if err != nil {
		return fmt.Errorf("ticket: %w", err)
	}
	u := *b.cfg.nodes[node]
	u.Scheme, u.Path = "ws", "/ws"
	u.RawQuery = url.Values{"ticket": {t}, "resume": {"1"}}.Encode()
	ws, err := dialWS(ctx, b.wsDialers[c.src], &u, readLimit)
	if err != nil {
		if he := (*wsHandshakeError)(nil); errors.As(err, &he) && he.Status == http.StatusTooManyRequests {
			b.warnOnce(&b.warnedConnCap, "the server refused a WebSocket with 429: raise MAX_CONNECTIONS_PER_IP and MAX_CONNECTIONS_PER_USER (0 = no cap) or add -source-addrs")
			return fmt.Errorf("dial: 429 too many connections from this address or user (MAX_CONNECTIONS_PER_IP, MAX_CONNECTIONS_PER_USER)")
		}
		return fmt.Errorf("dial: %w", err)
	}
	if b.ending.Load() {
		ws.CloseNow() // the run is over: no new readers after closeAll
		return errors.New("run ending")
	}

	c.mu.Lock()
	c.ws = ws
	c.gen++
	c.cut = false
	c.hello = make(chan struct{})
	c.synced = make(chan struct{})
	c.readerDone = make(chan struct{})
	gen, hello, synced, done := c.gen, c.hello, c.synced, c.readerDone
	c.mu.Unlock()

	b.readers.Add(1)
	go func() {
		defer b.readers.Done()
		defer close(done)
		c.readLoop(ws, gen)
	}()
	ok := false
	defer func() {
		if !ok {
			// The caller retries or gives up; this reader must not reconnect.
			c.mu.Lock()
			c.cut, c.up = true, false
			c.mu.Unlock()
			ws.CloseNow()
			<-done
		}
	}()

	select {
	case <-hello:
	case <-done:
		return fmt.Errorf("closed before hello (%v)", c.lastCloseCode())
	case <-ctx.Done():
		return fmt.Errorf("no hello within 60 s")
	}

	c.mu.Lock()
	c.up = true
	resend := make([][]byte, 0, len(c.pending))
	for _, f := range c.pending {
		resend = append(resend, f)
	}
	after := c.lastID
	c.mu.Unlock()

	if c.receive && c.room != nil {
		var f []byte
		f = append(f, `{"type":"sync","chat_name":`...)
		f = strconv.AppendQuote(f, c.room.name)
		f = append(f, `,"after_id":`...)
		f = strconv.AppendInt(f, after, 10)
		f = append(f, '}')
		if err := ws.writeTextCtx(ctx, f); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	for _, f := range resend {
		b.stats.resent.Add(1)
		if err := ws.writeTextCtx(ctx, f); err != nil {
			return fmt.Errorf("resend: %w", err)
		}
	}
	if c.receive && c.room != nil {
		select {
		case <-synced:
		case <-done:
			return fmt.Errorf("closed before synced (%v)", c.lastCloseCode())
		case <-ctx.Done():
			return fmt.Errorf("no synced within 60 s")
		}
	}
	c.mu.Lock()
	c.backAt = time.Now()
	c.mu.Unlock()
	ok = true
	return nil
}

func (c *client) lastCloseCode() websocket.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// readLoop reads one generation's frames until the connection ends, then
// schedules a reconnect unless the tool closed it on purpose.
func (c *client) readLoop(ws *wsConn, gen int) {
	b := c.b
	var f frame
	// The run's end closes the socket, once: no read watches a context.
	stop := context.AfterFunc(b.connCtx, ws.CloseNow)
	defer stop()
	for {
		// A buffer is taken only once a frame has begun to arrive, and is
		// held while it is read and handled, so that thousands of idle
		// connections hold none.
		err := ws.waitFrame()
		if err == nil {
			buf := bufPool.Get().(*bytes.Buffer)
			buf.Reset()
			if err = ws.readMessage(buf); err == nil {
				if parseFrame(buf.Bytes(), &f) {
					c.handle(&f, time.Now())
				} else {
					b.stats.countFrame("unparsable")
				}
			}
			if buf.Cap() <= 64<<10 { // a huge online_users frame's buffer is not kept
				bufPool.Put(buf)
			}
			if err == nil {
				continue
			}
		}
		code := websocket.CloseStatus(err)
		c.mu.Lock()
		c.closeCode = code
		c.up = false
		cut := c.cut
		if !cut && !c.connecting {
			c.downAt = time.Now() // a reconnect is timed from here (a failed attempt does not restart the clock)
		}
		current := c.gen == gen && !c.connecting
		c.mu.Unlock()
		ws.CloseNow()
		if !cut && b.connCtx.Err() == nil && !b.ending.Load() {
			b.stats.countClose(code, err) // also when connect is still running and will retry itself
			if current {
				b.scheduleReconnect(c)
			}
		}
		return
	}
}

// handle accounts for one frame.
func (c *client) handle(f *frame, now time.Time) {
	b := c.b
	switch string(f.typ) {
	case "text", "file", "system", "edit", "delete":
		c.handleMessage(f, now)
	case "ack":
		c.handleAck(f, now)
	case "error":
		code := string(f.code)
		b.stats.countError(code)
		if code == "too_many" {
			b.warnOnce(&b.warnedTooMany, "the server answered too_many: start it with "+serverEnvHint+" (the refused messages are reported, not counted as lost)")
		}
		if c.room != nil {
			if roomIdx, seq, ok := parseClientID(f.clientID, b.run); ok && roomIdx == c.room.idx {
				c.room.reject(seq)
				c.mu.Lock()
				delete(c.pending, seq)
				c.mu.Unlock()
				b.stats.rejected.Add(1)
			}
		}
	case "hello":
		c.mu.Lock()
		if c.hello != nil {
			select {
			case <-c.hello:
			default:
				close(c.hello)
			}
		}
		c.mu.Unlock()
	case "synced":
		if c.room == nil || string(f.chatName) != c.room.name {
			return
		}
		c.mu.Lock()
		c.lastID = max(c.lastID, f.lastID)
		select {
		case <-c.synced:
		default:
			close(c.synced)
		}
		c.mu.Unlock()
	default:
		b.stats.countFrame(string(f.typ))
	}
}

func (c *client) handleMessage(f *frame, now time.Time) {
	b := c.b
	if c.room == nil || string(f.chatName) != c.room.name {
		b.stats.foreign.Add(1)
		return
	}
	sent, roomIdx, seq, ok := parseText(f.text, b.run)
	c.mu.Lock()
	if f.id <= c.lastID && f.id != 0 {
		// Ids rise per chat on one connection; sync may legitimately replay
		// nothing below lastID, so anything here is out of order or repeated.
		if !ok || !c.got.has(seq) {
			c.reordered++
		}
	}
	c.lastID = max(c.lastID, f.id)
	if !ok || roomIdx != c.room.idx {
		c.mu.Unlock()
		b.stats.foreign.Add(1)
		return
	}
	c.received++
	dup := c.got.set(seq)
	if dup {
		c.duplicates++
	}
	c.mu.Unlock()
	if dup {
		return
	}
	b.stats.unique.Add(1)
	nowNs := now.UnixNano()
	lat := (nowNs - sent) / 1000
	if nowNs >= b.stats.measureFrom.Load() && nowNs < b.stats.measureTo.Load() {
		b.stats.windowDeliveries.Add(1)
		if b.nodes != nil {
			b.nodes.deliveries[c.node].Add(1)
		}
	}
	if sent >= b.stats.measureFrom.Load() {
		b.stats.latency.recordMicros(lat)
		if b.nodes != nil {
			if from, ok := b.nodes.senderOf(roomIdx, seq); ok && from != c.node {
				b.nodes.cross.recordMicros(lat)
			}
		}
	}
	b.stats.series.record(nowNs, lat)
}

func (c *client) handleAck(f *frame, now time.Time) {
	b := c.b
	if c.room == nil {
		return
	}
	roomIdx, seq, ok := parseClientID(f.clientID, b.run)
	if !ok || roomIdx != c.room.idx {
		return
	}
	c.mu.Lock()
	delete(c.pending, seq)
	c.mu.Unlock()
	sentAt, first := c.room.ack(seq, f.id)
	if !first {
		b.stats.dupAcks.Add(1)
		return
	}
	b.stats.acked.Add(1)
	b.stats.expected.Add(int64(len(c.room.members)))
	nowNs := now.UnixNano()
	if nowNs >= b.stats.measureFrom.Load() && nowNs < b.stats.measureTo.Load() {
		b.stats.windowAcks.Add(1)
	}
	lat := (nowNs - sentAt) / 1000
	if sentAt >= b.stats.measureFrom.Load() {
		b.stats.ack.recordMicros(lat)
	}
	b.stats.ackSeries.record(nowNs, lat)
}

// trySend sends the next message of the client's room unless the client is
// down or has inflight messages unacked. It reports whether it sent.
func (c *client) trySend(buf []byte) ([]byte, bool) {
	b := c.b
	c.mu.Lock()
	if !c.up || len(c.pending) >= b.cfg.inflight {
		c.mu.Unlock()
		return buf, false
	}
	ws := c.ws
	r := c.room
	node := c.node
	now := time.Now().UnixNano()
	seq := r.nextSeq(now)
	var text, id [96]byte
	t := appendText(text[:0], now, r.idx, seq, b.run, b.cfg.msgBytes)
	cid := appendClientID(id[:0], b.run, r.idx, seq)
	buf = appendSendFrame(buf[:0], r.name, cid, t)
	if c.pending == nil {
		c.pending = make(map[int][]byte)
	}
	c.pending[seq] = bytes.Clone(buf)
	c.mu.Unlock()
	if b.nodes != nil {
		b.nodes.sentFrom(r.idx, seq, node)
	}
	b.stats.sent.Add(1)
	// No context per write: a write that hangs is the watchdog's (see
	// startPacers). A timeout context here cost a timer, a watcher and
	// their garbage a message.
	c.writeSince.Store(now)
	err := ws.writeText(buf)
	c.writeSince.Store(0)
	if err != nil {
		// A connection that failed a write is not used again: closing it
		// ends the reader, which reconnects, and the frame is resent from
		// pending.
		ws.CloseNow()
		b.stats.writeErrors.Add(1)
	}
	return buf, true
}

// cutNow closes the connection abruptly (no close handshake) and marks it
// so that the reader does not reconnect it by itself.
func (c *client) cutNow() {
	c.mu.Lock()
	c.cut = true
	c.up = false
	c.downAt = time.Now()
	ws, done := c.ws, c.readerDone
	c.mu.Unlock()
	if ws != nil {
		ws.CloseNow()
	}
	if done != nil {
		<-done
	}
}

// closeGently ends a connection with a normal close at the end of a run.
func (c *client) closeGently() {
	c.mu.Lock()
	c.cut = true
	c.up = false
	ws, done := c.ws, c.readerDone
	c.mu.Unlock()
	if ws == nil {
		return
	}
	// The closing handshake: the reader ends when the server's close
	// answers ours (within a few seconds, or the socket is just closed).
	if ws.Close(websocket.StatusNormalClosure, "benchmark done") == nil {
		t := time.NewTimer(5 * time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	ws.CloseNow()
	<-done
}

// scheduleReconnect queues a client that dropped for the reconnect workers.
func (b *bench) scheduleReconnect(c *client) {
	b.stats.drops.Add(1)
	b.queueReconnect(c)
}

// queueReconnect hands a client to the reconnect workers after a random
// wait up to the jitter. The wait is the client's own, as a real client's
// backoff is, and holds no worker: with the jitter inside the workers, 64
// of them could start only about 128 reconnects a second whatever the
// server did.
func (b *bench) queueReconnect(c *client) {
	queue := func() {
		select {
		case b.reconnects <- c:
		default:
			b.stats.reconnectFailed.Add(1) // cannot happen: the queue holds every client
		}
	}
	if j := b.cfg.reconnectJitter; j > 0 {
		time.AfterFunc(time.Duration(rand.Int64N(int64(j))), queue)
		return
	}
	queue()
}

// reconnectWorker reconnects clients (each already past its jitter), up to
// 8 attempts each, 0.5 s to 8 s apart.
func (b *bench) reconnectWorker(ctx context.Context) {
	for {
		var c *client
		select {
		case c = <-b.reconnects:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		already := c.up || c.connecting
		c.mu.Unlock()
		if b.ending.Load() || already {
			continue
		}
		ok := false
		for attempt := 0; attempt < 8 && ctx.Err() == nil && !b.ending.Load(); attempt++ {
			if attempt > 0 && !sleepCtx(ctx, min(500*time.Millisecond<<(attempt-1), 8*time.Second)) {
				return
			}
			err := c.connect(ctx)
			if err == nil {
				ok = true
				break
			}
			b.stats.reconnectErrors.Add(1)
			b.noteError("reconnect", err)
		}
		if ok {
			c.mu.Lock()
			took := c.backAt.Sub(c.downAt)
			c.mu.Unlock()
			b.stats.reconnect.record(took)
			b.stats.reconnected.Add(1)
		} else if ctx.Err() == nil && !b.ending.Load() {
			b.stats.reconnectFailed.Add(1)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectAll connects clients with bounded concurrency, recording each
// connect time, and returns how many failed (with the first few errors
// noted). It stops starting new connections when ctx ends.
func (b *bench) connectAll(ctx context.Context, clients []*client, h *hist) int {
	var (
		failed atomic.Int64
		next   atomic.Int64
		wg     sync.WaitGroup
		done   atomic.Int64
	)
	progress := b.progress("connected", len(clients), &done)
	defer progress()
	for w := 0; w < b.cfg.connectConcurrency; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(clients) || ctx.Err() != nil {
					return
				}
				start := time.Now()
				err := clients[i].connect(ctx)
				if err != nil {
					failed.Add(1)
					b.noteError("connect", err)
					clients[i].mu.Lock()
					clients[i].failed = true
					clients[i].mu.Unlock()
				} else {
					h.record(time.Since(start))
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	// Clients never tried (the connect phase ran out of time) are failed too.
	for i := min(int(next.Load()), len(clients)); i < len(clients); i++ {
		c := clients[i]
		c.mu.Lock()
		if c.gen == 0 {
			c.failed = true
			failed.Add(1)
		}
		c.mu.Unlock()
	}
	return int(failed.Load())
}
