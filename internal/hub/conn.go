package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Conn is one WebSocket connection.
type Conn struct {
	h      *Hub
	ws     *websocket.Conn
	out    *batchConn // ws's network connection: writes are coalesced through it
	id     chat.Identity
	home   chat.Chat    // the chat named in the URL: frames without chat_name go here
	log    *slog.Logger // the hub's, with the connection's conn_id and user_id
	connID string
	opened time.Time

	// The send queue. There is no writer goroutine while it is empty: the
	// first frame queued starts one, which writes until the queue is empty
	// again and ends. An idle connection holds no queue and one goroutine.
	qmu       sync.Mutex
	queue     [][]byte  // frames waiting; pingFrame asks for a ping
	writing   bool      // a writer goroutine is running (or the connection is done writing)
	lastWrite time.Time // used by the writer goroutine only

	done      chan struct{} // closed when the connection is to close
	closed    chan struct{} // closed when the close (or the abrupt drop) is done
	closeOnce sync.Once
	// closeCode and closeWhy are the close the first close or drop chose
	// (written once, under closeOnce; read after closed).
	closeCode websocket.StatusCode
	closeWhy  string
	lastSeen  *atomic.Int64 // Unix nanoseconds of the last frame or pong (the socket's)
	lastPing  atomic.Int64  // Unix nanoseconds of the last ping queued
	// revoked is set when the connection is closed because its session or
	// account ended: its user is not coming back, so no presence grace.
	revoked atomic.Bool

	// The chats this connection receives live are in the hub's index
	// (Hub.idx.subs), under the index's lock.

	mu      sync.Mutex
	streams map[int64]*stream // per chat: what has been sent, for gap-free sync

	// resume: every chat's live messages wait until the client has sent
	// sync for it, so that a reconnecting client sees no gap and no
	// duplicate. Without it (simple clients), live delivery starts at once.
	resume bool

	// inflight holds a token for each message of this connection waiting in
	// the committer's queue; the reader stops reading when it is full.
	inflight chan struct{}

	// Used by the reader goroutine only.
	chatsByName map[string]*chat.Chat // chats other than home resolved so far; nil until the first
	frames      ratelimit.Bucket
}

// stream tracks one chat's messages on one connection.
type stream struct {
	lastSent int64 // highest message id queued or written
	syncing  bool  // a sync is replaying from the store; live messages wait for it
	dirty    bool  // a live message arrived during the sync
}

// Serve takes over an accepted connection: it registers it and returns,
// leaving a goroutine of its own to read the connection until it closes
// (the HTTP handler's goroutine, its deep stack and its request are freed).
// The caller has authenticated id; home is the chat the connection opens
// in; resume holds each chat's live messages until the client syncs it.
// ended, if not nil, is called once the connection is gone.
func (h *Hub) Serve(ctx context.Context, sock *Socket, id chat.Identity, home chat.Chat, readLimit int64, resume bool, ended func()) {
	ws := sock.ws
	c := &Conn{
		h: h, ws: ws, out: sock.out, id: id, home: home, resume: resume,
		log:    h.log.With("conn_id", sock.id, "user_id", id.UserID),
		connID: sock.id, opened: time.Now(),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
		lastSeen: &sock.lastSeen,
		streams:  make(map[int64]*stream),
		inflight: make(chan struct{}, maxInflight),
		frames:   ratelimit.NewBucket(h.opt.Limits.FrameRate, h.opt.Limits.FrameBurst),
	}
	c.touch()
	c.lastPing.Store(time.Now().UnixNano())
	ws.SetReadLimit(readLimit)
	finish := func() {
		if ended != nil {
			ended()
		}
	}

	chatIDs, err := h.opt.Chats.ChatIDs(ctx, id.UserID)
	if err != nil {
		c.log.Warn("websocket: load chats", "err", err)
		ws.Close(websocket.StatusTryAgainLater, "database unavailable; reconnect shortly")
		finish()
		return
	}
	announceIn, ok := h.register(c, chatIDs)
	if !ok {
		ws.Close(websocket.StatusServiceRestart, "server restarting")
		finish()
		return
	}
	// Before hello: a message committed after the client hears it is
	// connected must reach this node.
	h.awaitChats(ctx, chatIDs)
	c.enqueueJSON(wire.Hello{
		Type: wire.TypeHello, Username: id.Username, ChatName: home.Name, MaxMessageBytes: h.opt.Limits.MaxMessageBytes,
		Resume: resume, Limits: wire.FromLimits(h.opt.Limits),
	})
	c.enqueueJSON(wire.OnlineUsers{Type: wire.TypeOnlineUsers, Users: h.onlineFor(c)})
	if len(announceIn) > 0 {
		h.announce(id.UserID, id.Username, announceIn, true)
	}
	h.m.Opened.Inc()
	// With the upgrade request's context: the line carries its request_id.
	c.log.InfoContext(ctx, "websocket opened", "chat_name", home.Name, "resume", resume)

	// The request's context ends when the handler returns, and holding it
	// would keep the request alive; nothing below needs its values.
	ctx = context.Background()
	go func() {
		defer h.wg.Done()
		defer finish()
		c.close(closeFor(c.readLoop(ctx)))
		<-c.closed
		c.log.Info("websocket closed", "code", int(c.closeCode), "reason", c.closeWhy,
			"duration_ms", time.Since(c.opened).Milliseconds())
		h.stopTypingOf(c)
		if wentOffline, chatIDs := h.unregister(c); wentOffline {
			h.announce(id.UserID, id.Username, chatIDs, true)
		}
	}()
}

func (c *Conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// close closes the connection with a code, in the background (the close
// handshake waits for the peer); the first call wins. It never blocks.
// Frames still queued are not sent: the client resumes with sync. It
// reports whether this call was the first.
func (c *Conn) close(code websocket.StatusCode, why string) (first bool) {
	c.closeOnce.Do(func() {
		first = true
		c.closeCode, c.closeWhy = code, why
		c.stopWriting()
		close(c.done)
		go func() {
			defer close(c.closed)
			c.ws.Close(code, why)
		}()
	})
	return first
}

// drop closes the connection without waiting for the peer's close frame,
// for a peer that has stopped answering; why goes in the closed line. It
// reports whether this call was the first to close.
func (c *Conn) drop(why string) (first bool) {
	c.closeOnce.Do(func() {
		first = true
		c.closeCode, c.closeWhy = -1, why
		c.stopWriting()
		close(c.done)
		c.ws.CloseNow()
		close(c.closed)
	})
	return first
}

// stopWriting makes enqueue refuse frames and start no more writers.
func (c *Conn) stopWriting() {
	c.qmu.Lock()
	c.queue = nil
	c.writing = true
	c.qmu.Unlock()
}

// errFrameTimeout answers a frame whose work outran Options.FrameTimeout.
var errFrameTimeout = chat.Errorf(chat.EUnavailable, "The server could not finish this in time; try again shortly.")

// maxInflight is how many of one connection's messages may wait in the
// committer's queue at once. A client that sends several before the first
// ack (the web client's outbox after a reconnect, a bot) has them committed
// in the same group instead of one group each.
const maxInflight = 32

// stalledWriteGrace is how long a connection whose queue overflowed may
// still take to write what it has, before it is dropped.
const stalledWriteGrace = time.Second

// enqueue queues a frame without blocking, starting a writer if none is
// running; a full queue closes the connection, and the client resumes with
// sync.
func (c *Conn) enqueue(frame []byte) bool {
	c.qmu.Lock()
	select {
	case <-c.done:
		c.qmu.Unlock()
		return false
	default:
	}
	if len(c.queue) >= c.h.opt.QueueSize {
		c.qmu.Unlock()
		// The writer may be blocked on a client that stopped reading: give
		// it a moment to finish, then drop the connection.
		c.out.giveUpBy(time.Now().Add(stalledWriteGrace))
		if c.close(websocket.StatusPolicyViolation, "send queue full: reconnect and sync") {
			c.h.m.SlowDropped.Inc()
			c.log.Warn("websocket: slow client: send queue full; closing the connection", "queue", c.h.opt.QueueSize)
		}
		return false
	}
	c.queue = append(c.queue, frame)
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		go c.writeQueued()
	}
	return true
}

// pingFrame in the queue asks the writer for a ping.
var pingFrame = []byte{}

func (c *Conn) enqueueJSON(v any) {
	frame, err := json.Marshal(v)
	if err != nil {
		c.log.Error("websocket: encode frame", "err", err)
		return
	}
	c.enqueue(frame)
}

func (c *Conn) sendError(err error, clientID string) {
	if chat.ErrorCode(err) == chat.EInternal && errors.Is(err, context.DeadlineExceeded) {
		// The frame's own bound (Options.FrameTimeout) ran out: the
		// database is slow or gone, which the client may retry.
		err = fmt.Errorf("%w (%w)", errFrameTimeout, err)
	}
	e := wire.Error{Type: wire.TypeError, Code: chat.ErrorCode(err), Detail: chat.ErrorMessage(err), ClientID: clientID}
	var ce *chat.Error
	if errors.As(err, &ce) {
		e.RetryAfter = math.Ceil(ce.RetryAfter.Seconds()*1000) / 1000
	}
	if e.Code == chat.EInternal {
		c.log.Error("websocket: frame failed", "err", err)
	}
	c.enqueueJSON(e)
}

// deliverMessage queues a committed message unless a sync of its chat is
// running (the sync will fetch it) or it was already sent.
// It reports whether the frame was queued.
func (c *Conn) deliverMessage(chatID, messageID int64, frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streamLocked(chatID)
	if st.syncing {
		st.dirty = true
		return false
	}
	if messageID <= st.lastSent {
		return false
	}
	st.lastSent = messageID
	return c.enqueue(frame)
}

// streamLocked returns a chat's stream state, making it on first use: held
// for a sync on a resuming connection, live otherwise. c.mu is held.
func (c *Conn) streamLocked(chatID int64) *stream {
	st := c.streams[chatID]
	if st == nil {
		st = &stream{syncing: c.resume}
		c.streams[chatID] = st
	}
	return st
}

// forget drops a chat's stream state after the user left the chat, so that
// rejoining starts afresh.
func (c *Conn) forget(chatID int64) {
	c.mu.Lock()
	delete(c.streams, chatID)
	c.mu.Unlock()
}

// writeQueued is the connection's writer while its queue holds frames: it
// takes the whole queue at a time and writes it coalesced, then ends when
// the queue is empty. While the hub is busy, a connection that wrote less
// than WriteDelay ago waits for the hub's next flush tick first, so that
// under load frames gather and one write carries many.
func (c *Conn) writeQueued() {
	for {
		if d := c.h.opt.WriteDelay; d > 0 && c.h.busy.Load() && time.Since(c.lastWrite) < d {
			select {
			case <-c.h.flush.wait():
			case <-c.done:
				return
			}
		}
		c.qmu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			select {
			case <-c.done: // stopWriting owns the flag now
			default:
				c.writing = false
			}
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		writes, err := c.out.send(batch)
		c.lastWrite = time.Now()
		c.h.frames.Add(int64(len(batch)))
		c.h.writes.Add(writes)
		if err != nil {
			// A write that outran WriteTimeout is a client that stopped
			// reading: a slow client, as much as one whose queue filled.
			slow := errors.Is(err, os.ErrDeadlineExceeded)
			why := "write failed"
			if slow {
				why = "slow client: a write stalled for the write timeout"
			}
			if c.drop(why) && slow {
				c.h.m.SlowDropped.Inc()
				c.log.Warn("websocket: slow client: a write stalled for the write timeout; dropping the connection", "write_timeout", c.h.opt.WriteTimeout.String())
			}
			return
		}
	}
}

// checkAlive is the hub's periodic look at a connection: it drops one that
// has sent nothing, not even a pong, for PongTimeout, closes one whose
// session has expired, and queues a ping every PingInterval.
func (c *Conn) checkAlive(now time.Time) {
	if now.Sub(time.Unix(0, c.lastSeen.Load())) > c.h.opt.PongTimeout {
		c.drop("no frame or pong within the pong timeout")
		return
	}
	if !now.Before(c.id.ExpiresAt) {
		c.close(websocket.StatusPolicyViolation, "session expired: log in again")
		return
	}
	if now.Sub(time.Unix(0, c.lastPing.Load())) >= c.h.opt.PingInterval {
		c.lastPing.Store(now.UnixNano())
		c.enqueue(pingFrame)
	}
}

// readLoop reads frames until the connection fails or is closed, and
// returns the read error that ended it (nil when it was told to close).
func (c *Conn) readLoop(ctx context.Context) error {
	// When the connection is told to close, the writer closes the socket,
	// which ends Read.
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		c.touch()
		// Every frame counts against the connection's rate, before any
		// work on it: a flood of malformed or binary frames is held to the
		// rate like any other.
		if ok, wait := c.frames.Allow(time.Now()); !ok {
			c.h.m.FramesLimited.Inc()
			c.sendError(&chat.Error{Code: chat.ETooMany, Message: "Too many frames on this connection; slow down.", RetryAfter: wait}, clientIDOf(data))
			continue
		}
		if typ != websocket.MessageText {
			c.sendError(chat.Errorf(chat.EInvalid, "Binary frames are not supported; send JSON text frames."), "")
			continue
		}
		// A frame's work is bounded, so that a database that hangs gets
		// the client an "unavailable" error instead of a reader stuck
		// for good (and no pongs read meanwhile).
		fctx, cancel := context.WithTimeout(ctx, c.h.opt.FrameTimeout)
		c.handle(fctx, data)
		cancel()
		select {
		case <-c.done:
			return nil
		default:
		}
	}
}

// clientIDOf is the client id of a frame refused before it was handled, so
// that the client knows which message to send again; "" when the frame does
// not decode.
func clientIDOf(data []byte) string {
	in, err := wire.DecodeInbound(data)
	if err != nil {
		return ""
	}
	return in.ClientID
}

// closeFor is the close code for a connection whose reader ended with err.
// The peer's close frame (echoed by the library), a dropped network
// connection and our own close (shutdown, logout, a full queue: the first
// close wins, so this one is not sent) end it normally. Any other read
// error is the peer breaking RFC 6455. The library writes 1002 or 1009
// itself for most of those, and then this close frame is not sent; for
// some, such as a client's unmasked frame (§5.1) or a negative length, it
// writes none, and those must not look like a normal closure.
func closeFor(err error) (websocket.StatusCode, string) {
	var netErr net.Error
	switch {
	case err == nil, websocket.CloseStatus(err) != -1,
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return websocket.StatusNormalClosure, ""
	}
	return websocket.StatusProtocolError, "protocol error"
}

// handle answers one frame. Every problem is an error frame; the connection
// stays open.
func (c *Conn) handle(ctx context.Context, data []byte) {
	in, err := wire.DecodeInbound(data)
	if err != nil {
		c.sendError(err, "")
		return
	}
	switch in.Type {
	case wire.TypeText:
		c.handleSend(ctx, in, chat.MessageText)
	case wire.TypeEdit, wire.TypeDelete:
		c.handleChange(ctx, in)
	case wire.TypeRead:
		c.handleRead(ctx, in)
	case wire.TypeFile:
		c.handleSend(ctx, in, chat.MessageFile)
	case wire.TypeTyping:
		c.handleTyping(ctx, in)
	case wire.TypeSync:
		c.handleSync(ctx, in)
	case wire.TypeJoin:
		if ch, err := c.resolve(ctx, in.ChatName); err != nil {
			c.sendError(err, "")
		} else {
			c.h.subscribe(ctx, c, ch.ID)
			c.enqueueJSON(wire.ChatEvent{Type: wire.TypeJoined, ChatName: ch.Name})
		}
	case wire.TypeLeave:
		if ch, err := c.resolve(ctx, in.ChatName); err != nil {
			c.sendError(err, "")
		} else {
			c.h.unsubscribe(c, ch.ID)
			c.enqueueJSON(wire.ChatEvent{Type: wire.TypeLeft, ChatName: ch.Name})
		}
	case wire.TypePing:
		c.enqueueJSON(wire.ChatEvent{Type: wire.TypePong})
	case "":
		c.sendError(chat.Errorf(chat.EInvalid, "The frame has no \"type\"."), "")
	default:
		c.sendError(chat.Errorf(chat.EInvalid, "Unknown frame type %q.", chat.Clip(in.Type, 32)), "")
	}
}

// resolve finds a chat by name (or the home chat when name is empty) and
// checks membership. A chat this connection is subscribed to is known to be
// one of the user's; others are checked in the store.
func (c *Conn) resolve(ctx context.Context, name string) (chat.Chat, error) {
	if name == "" {
		name = c.home.Name
	}
	known := c.chatsByName[name]
	if name == c.home.Name {
		known = &c.home
	}
	if known != nil && c.h.idx.subscribed(c, known.ID) {
		return *known, nil
	}
	ch, err := c.h.opt.Chats.Resolve(ctx, c.id, name)
	if err != nil {
		return chat.Chat{}, err
	}
	if name != c.home.Name && len(c.chatsByName) < 1024 {
		if c.chatsByName == nil {
			c.chatsByName = make(map[string]*chat.Chat)
		}
		c.chatsByName[name] = &ch
	}
	return ch, nil
}

// allowMessage applies the user's message rate; over it, the client gets
// an error frame with retry_after and the connection stays open.
func (c *Conn) allowMessage(clientID string) bool {
	ok, wait := c.h.messages.Allow(c.id.UserID, time.Now())
	if !ok {
		c.h.m.MessagesLimited.Inc()
		c.sendError(&chat.Error{Code: chat.ETooMany, Message: "You are sending too fast; wait a moment.", RetryAfter: wait}, clientID)
	}
	return ok
}

func (c *Conn) handleSend(ctx context.Context, in wire.Inbound, kind string) {
	c.h.m.Received.Inc()
	ch, err := c.resolve(ctx, in.ChatName)
	if err != nil {
		c.h.m.rejected(chat.ErrorCode(err))
		c.sendError(err, in.ClientID)
		return
	}
	if !c.allowMessage(in.ClientID) {
		c.h.m.rejected(chat.ETooMany)
		return
	}
	select {
	case c.inflight <- struct{}{}:
	case <-c.done:
		return
	case <-ctx.Done():
		return
	}
	userID := c.id.UserID
	err = c.h.opt.Messages.SendAsync(ctx, c.id, delivery.SendRequest{Chat: ch, Kind: kind, Text: in.Text, ClientID: in.ClientID, ReplyTo: in.ReplyTo},
		// In the sequencer's publisher, once the message's group has
		// committed and been published.
		func(sent delivery.Sent, err error) {
			<-c.inflight
			if err != nil {
				c.h.m.rejected(chat.ErrorCode(err))
				c.sendError(err, in.ClientID)
				return
			}
			c.h.stopTyping(context.Background(), ch.ID, userID)
			m := sent.Message
			c.enqueueJSON(wire.Ack{Type: wire.TypeAck, ClientID: m.ClientID, ID: m.ID, ChatName: m.ChatName, Duplicate: !sent.Created})
		})
	if err != nil {
		<-c.inflight
		c.h.m.rejected(chat.ErrorCode(err))
		c.sendError(err, in.ClientID)
	}
}

func (c *Conn) handleChange(ctx context.Context, in wire.Inbound) {
	ch, err := c.resolve(ctx, in.ChatName)
	if err != nil {
		c.sendError(err, in.ClientID)
		return
	}
	if !c.allowMessage(in.ClientID) {
		return
	}
	done, err := c.h.opt.Messages.Change(ctx, c.id, delivery.ChangeRequest{
		Chat: ch, MessageID: in.MessageID, Delete: in.Type == wire.TypeDelete, Text: in.Text, ClientID: in.ClientID,
	})
	if err != nil {
		c.sendError(err, in.ClientID)
		return
	}
	ev := done.Event
	c.enqueueJSON(wire.Ack{Type: wire.TypeAck, ClientID: ev.ClientID, ID: ev.ID, ChatName: ev.ChatName, Duplicate: !done.Created})
}

func (c *Conn) handleRead(ctx context.Context, in wire.Inbound) {
	ch, err := c.resolve(ctx, in.ChatName)
	if err != nil {
		c.sendError(err, "")
		return
	}
	// The answer is the read frame that every connection of the user gets.
	if _, err := c.h.opt.Chats.MarkRead(ctx, c.id, ch, in.MessageID); err != nil {
		c.sendError(err, "")
	}
}

func (c *Conn) handleTyping(ctx context.Context, in wire.Inbound) {
	ch, err := c.resolve(ctx, in.ChatName)
	if err != nil {
		c.sendError(err, "")
		return
	}
	if in.Typing == nil || *in.Typing {
		c.h.startTyping(ctx, c, ch, time.Now())
	} else {
		c.h.stopTyping(ctx, ch.ID, c.id.UserID)
	}
}

// handleSync replays every message after in.AfterID, in order and in pages,
// then hands the chat back to live delivery without a gap: live messages
// that arrive meanwhile are not queued but fetched by the next page.
func (c *Conn) handleSync(ctx context.Context, in wire.Inbound) {
	ch, err := c.resolve(ctx, in.ChatName)
	if err != nil {
		c.sendError(err, "")
		return
	}
	if in.AfterID < 0 {
		c.sendError(chat.Errorf(chat.EInvalid, "after_id must not be negative."), "")
		return
	}
	c.h.subscribe(ctx, c, ch.ID)
	c.mu.Lock()
	st := c.streamLocked(ch.ID)
	st.syncing, st.dirty = true, false
	c.mu.Unlock()

	last := in.AfterID
	finish := func() {
		c.mu.Lock()
		st.syncing = false
		st.lastSent = max(st.lastSent, last)
		c.mu.Unlock()
	}
	for {
		// Each page is bounded on its own: a long replay to a slow reader
		// may take longer than one frame's bound in all.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.h.opt.FrameTimeout)
		msgs, err := c.h.opt.Messages.After(pctx, ch, last, c.h.opt.SyncPage)
		cancel()
		if err != nil {
			finish()
			c.sendError(err, "")
			return
		}
		// Written directly, a page at a time, not queued: a long replay
		// must not fill the queue that live frames of other chats need.
		if len(msgs) > 0 {
			frames := make([][]byte, len(msgs))
			for i, m := range msgs {
				frames[i], _ = json.Marshal(wire.FromMessage(m))
			}
			if _, err = c.out.send(frames); err != nil {
				finish()
				c.close(websocket.StatusGoingAway, "write failed")
				return
			}
			last = msgs[len(msgs)-1].ID
		}
		if len(msgs) == c.h.opt.SyncPage {
			continue
		}
		c.mu.Lock()
		if st.dirty {
			st.dirty = false
			c.mu.Unlock()
			continue
		}
		st.syncing = false
		st.lastSent = last
		c.mu.Unlock()
		break
	}
	c.enqueueJSON(wire.Synced{Type: wire.TypeSynced, ChatName: ch.Name, LastID: last})
}
