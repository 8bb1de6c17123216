package hub

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Writes are coalesced: the connection's writer takes every frame already
// queued, frames them into memory and hands them to the kernel in one
// write. Data frames are framed here (RFC 6455 §5.2: a server's frames are
// unmasked; each message is one final text frame), not by the WebSocket
// library, whose per-frame lock, context and flush cost more than the frame
// itself; pings are framed here too. The library still reads, answers the
// client's pings and writes the close frame. Before this, each frame cost a write system call, a timer and a
// context: 85 % of the server's CPU in the 1,000-member fan-out benchmark.

// flushClock paces busy writers. A connection that wrote less than one
// period ago waits for the clock's next tick before writing again, so
// frames that arrive meanwhile share the write: under load each connection
// makes at most one write per period however many frames it gets, and the
// reader at the other end wakes up as rarely. An idle connection writes at
// once. The clock runs only while someone waits: one timer per period for
// the whole hub, not one per frame or connection.
type flushClock struct {
	every time.Duration
	mu    sync.Mutex
	next  chan struct{} // closed at the next tick; nil when nobody waits
}

// wait returns a channel closed at the next tick.
func (f *flushClock) wait() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = make(chan struct{})
		time.AfterFunc(f.every, f.tick)
	}
	return f.next
}

func (f *flushClock) tick() {
	f.mu.Lock()
	next := f.next
	f.next = nil
	f.mu.Unlock()
	close(next)
}

// maxBatchBytes bounds one coalesced write; a bigger batch is written in
// several.
const maxBatchBytes = 64 << 10

// writeBufSize is the buffer the WebSocket library writes its control
// frames through: a control frame (at most 127 bytes) always fits, so it
// reaches batchConn in one Write, between two of the hub's batches.
const writeBufSize = 256

// readBufSize is the read buffer of a connection: most chat frames fit.
const readBufSize = 1024

// batchBufs recycles batch buffers, so that an idle connection holds none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// batchConn is the hijacked network connection. The hub writes batches of
// data frames with send; the WebSocket library's writes (control frames)
// go through Write. Both take mu, so frames never interleave.
type batchConn struct {
	net.Conn
	timeout time.Duration // how long one write may block

	mu       sync.Mutex
	deadline time.Time // the write deadline now set on Conn

	// cutoff (Unix nanoseconds, 0 for none) is when writes give up for a
	// connection that is being dropped; see giveUpBy.
	cutoff atomic.Int64
}

// giveUpBy makes every write, including one blocked now, fail at t: the
// connection is being dropped (its queue overflowed) and must not hold
// its writer for the full write timeout.
func (b *batchConn) giveUpBy(t time.Time) {
	if b.cutoff.CompareAndSwap(0, t.UnixNano()) {
		b.Conn.SetWriteDeadline(t)
	}
}

// armLocked makes sure the next write may block for between half the
// timeout and the whole of it. Moving the deadline only when half of it is
// used saves two system calls a write. b.mu is held.
func (b *batchConn) armLocked(now time.Time) {
	if b.cutoff.Load() != 0 {
		return
	}
	if b.deadline.Sub(now) < b.timeout/2 {
		b.deadline = now.Add(b.timeout)
		b.Conn.SetWriteDeadline(b.deadline)
	}
}

// Write is the WebSocket library's path: control frames, each whole.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armLocked(time.Now())
	return b.Conn.Write(p)
}

// send writes text messages, each as one frame (pingFrame as a ping), in as
// few writes as maxBatchBytes allows. It returns how many writes it made.
func (b *batchConn) send(frames [][]byte) (writes int64, err error) {
	bufp := batchBufs.Get().(*[]byte)
	buf := (*bufp)[:0]
	b.mu.Lock()
	defer func() {
		b.mu.Unlock()
		if cap(buf) <= 4*maxBatchBytes {
			*bufp = buf[:0]
			batchBufs.Put(bufp)
		}
	}()
	for i, frame := range frames {
		if len(frame) == 0 { // pingFrame: a ping with no payload
			buf = append(buf, 0x89, 0)
		} else {
			buf = appendTextFrame(buf, frame)
		}
		if len(buf) >= maxBatchBytes || i == len(frames)-1 {
			b.armLocked(time.Now())
			if _, err = b.Conn.Write(buf); err != nil {
				return writes, err
			}
			writes++
			buf = buf[:0]
		}
	}
	return writes, nil
}

// appendTextFrame appends payload as one unmasked, final text frame.
func appendTextFrame(dst, payload []byte) []byte {
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, 0x81, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x81, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x81, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// Socket is an accepted WebSocket whose writes the hub can coalesce.
type Socket struct {
	id       string // the connection id in every log line about it
	ws       *websocket.Conn
	out      *batchConn
	lastSeen atomic.Int64 // Unix nanoseconds of the last pong (and, through Conn, frame)
}

// batchWriter hands the WebSocket library a connection that batches.
type batchWriter struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *batchConn
}

func (w *batchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http has flushed the response head; its fresh writer is empty
	// and is replaced by one that writes through the batch.
	w.conn = &batchConn{Conn: conn, timeout: w.timeout}
	// A small read buffer instead of net/http's 4 KiB one, unless that one
	// holds bytes the client sent right after its request: the WebSocket
	// library takes those over from the buffer it is handed.
	rd := brw.Reader
	if rd.Buffered() == 0 {
		rd = bufio.NewReaderSize(w.conn, readBufSize)
	}
	return w.conn, bufio.NewReadWriter(rd, bufio.NewWriterSize(w.conn, writeBufSize)), nil
}

// Accept upgrades an HTTP request to a WebSocket the hub can serve. On
// failure the client has had its answer.
// opts may be nil; its OnPongReceived is the hub's.
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*Socket, error) {
	sock := &Socket{}
	o := websocket.AcceptOptions{}
	if opts != nil {
		o = *opts
	}
	o.OnPongReceived = func(context.Context, []byte) { sock.lastSeen.Store(time.Now().UnixNano()) }
	bw := &batchWriter{ResponseWriter: w, timeout: h.opt.WriteTimeout}
	ws, err := websocket.Accept(bw, r, &o)
	if err != nil {
		return nil, err
	}
	sock.ws, sock.out = ws, bw.conn
	sock.id = newConnID()
	return sock, nil
}

// ID is the connection's id: the conn_id of every log line about it.
func (s *Socket) ID() string { return s.id }

// newConnID returns 64 random bits in hex: unique among the connections of
// a server's life, and across nodes, for joining log lines.
func newConnID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
