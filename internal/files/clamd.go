package files

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// defaultScanTimeout is used when Scanner.Timeout is zero: long enough for
// clamd to scan a large archive, short enough that a hung daemon does not
// hold an upload open for ever.
const defaultScanTimeout = 60 * time.Second

// maxStreamChunk is the largest piece sent in one INSTREAM frame. clamd
// reads each frame whole before scanning on, so frames are kept small.
const maxStreamChunk = 64 << 10

// maxReply bounds a clamd reply; real ones are a line.
const maxReply = 4 << 10

// Scanner is a client for clamd, the ClamAV daemon. Addr is "host:port" for
// TCP, or a unix socket path (starting with "/", or written "unix:/path").
// Timeout bounds connecting and each exchange with clamd, including the wait
// for a verdict; zero means 60 s. A Scanner holds no connection and may be
// shared: each scan dials its own.
type Scanner struct {
	Addr    string
	Timeout time.Duration
}

// Verdict is clamd's answer for one stream. Signature names what was found
// (as clamd reports it, reduced to printable ASCII) when Infected is true.
type Verdict struct {
	Infected  bool
	Signature string
}

func (s *Scanner) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return defaultScanTimeout
}

func (s *Scanner) dial(ctx context.Context) (net.Conn, error) {
	network, addr := "tcp", s.Addr
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", rest
	} else if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	d := net.Dialer{Timeout: s.timeout()}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to clamd at %s: %w", ErrScannerDown, s.Addr, err)
	}
	return conn, nil
}

// Ping checks that clamd answers, for a readiness probe.
func (s *Scanner) Ping(ctx context.Context) error {
	conn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := s.arm(ctx, conn); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "zPING\x00"); err != nil {
		return s.down(ctx, "send PING", err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return s.down(ctx, "read PING reply", err)
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: clamd answered PING with %q", ErrScannerDown, printable(reply, 200))
	}
	return nil
}

// arm gives the next exchange on conn a fresh deadline. The context is
// checked after the deadline is set: a cancellation that came earlier has
// already set a past deadline that this one would undo, and one that comes
// later sets its past deadline after this one.
func (s *Scanner) arm(ctx context.Context, conn net.Conn) error {
	conn.SetDeadline(time.Now().Add(s.timeout()))
	if ctx.Err() != nil {
		return fmt.Errorf("clamd: %w", context.Cause(ctx))
	}
	return nil
}

// down wraps a failed exchange: as ErrScannerDown, or as the context's error
// when it was the caller who gave up.
func (s *Scanner) down(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("clamd %s: %w", what, context.Cause(ctx))
	}
	return fmt.Errorf("%w: clamd %s: %w", ErrScannerDown, what, err)
}

// Scan is one file being streamed to clamd. Write it as the upload arrives,
// then Finish for the verdict; Abort when giving up. It is not safe for
// concurrent use.
type Scan struct {
	s    *Scanner
	ctx  context.Context
	conn net.Conn
	stop func() bool // unregisters the context watch
	err  error       // sticky: after a failure no verdict can be trusted
	done bool
}

// Start connects to clamd and opens an INSTREAM scan. Cancelling ctx
// interrupts the scan at any point.
func (s *Scanner) Start(ctx context.Context) (*Scan, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	sc := &Scan{s: s, ctx: ctx, conn: conn}
	sc.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if err := s.arm(ctx, conn); err != nil {
		sc.Abort()
		return nil, err
	}
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		sc.Abort()
		return nil, s.down(ctx, "send INSTREAM", err)
	}
	return sc, nil
}

// Write sends p to clamd in frames of at most 64 KiB. An empty p sends
// nothing: a zero-length frame would end the stream. When clamd refuses the
// stream as longer than its StreamMaxLength, the error wraps ErrScanLimit.
// Unlike io.Writer it returns only an error: a scan takes all of p or
// fails, and a failed scan is over (every later call returns the error).
func (sc *Scan) Write(p []byte) error {
	if sc.err != nil {
		return sc.err
	}
	if sc.done {
		return errors.New("files: write to a finished scan")
	}
	var frame [4]byte
	for len(p) > 0 {
		n := min(len(p), maxStreamChunk)
		binary.BigEndian.PutUint32(frame[:], uint32(n))
		if err := sc.s.arm(sc.ctx, sc.conn); err != nil {
			sc.fail(err)
			return err
		}
		bufs := net.Buffers{frame[:], p[:n]}
		if _, err := bufs.WriteTo(sc.conn); err != nil {
			sc.fail(sc.writeError(err))
			return sc.err
		}
		p = p[n:]
	}
	return nil
}

// writeError explains a failed write. clamd answers a stream over its limit
// and then closes the connection, which makes the next write fail; its
// answer may still be waiting to be read.
func (sc *Scan) writeError(err error) error {
	if sc.ctx.Err() == nil {
		sc.conn.SetReadDeadline(time.Now().Add(time.Second))
		if reply, _ := readReply(sc.conn); limitExceeded(reply) {
			return fmt.Errorf("%w: clamd: %s", ErrScanLimit, printable(reply, 200))
		}
	}
	return sc.s.down(sc.ctx, "send stream", err)
}

// Finish ends the stream and returns clamd's verdict. Any answer but a
// clean "OK" or a named finding is an error wrapping ErrScannerDown (or
// ErrScanLimit), so the caller fails closed.
func (sc *Scan) Finish() (Verdict, error) {
	if sc.err != nil {
		return Verdict{}, sc.err
	}
	if sc.done {
		return Verdict{}, errors.New("files: scan already finished")
	}
	defer sc.Abort()
	sc.done = true
	if err := sc.s.arm(sc.ctx, sc.conn); err != nil {
		sc.fail(err)
		return Verdict{}, err
	}
	if _, err := sc.conn.Write([]byte{0, 0, 0, 0}); err != nil {
		sc.fail(sc.writeError(err))
		return Verdict{}, sc.err
	}
	reply, err := readReply(sc.conn)
	if err != nil && !limitExceeded(reply) {
		// A reply cut short is not a verdict, even if it starts like one.
		sc.fail(sc.s.down(sc.ctx, "read verdict", err))
		return Verdict{}, sc.err
	}
	v, err := parseVerdict(reply)
	if err != nil {
		sc.fail(err)
		return Verdict{}, err
	}
	return v, nil
}

// Abort closes the connection, which makes clamd drop the stream. It may be
// called at any time and more than once, also after Finish.
func (sc *Scan) Abort() {
	if sc.conn == nil {
		return
	}
	sc.stop()
	sc.conn.Close()
	sc.conn = nil
	sc.done = true
	if sc.err == nil {
		sc.err = errors.New("files: scan aborted")
	}
}

func (sc *Scan) fail(err error) {
	sc.err = err
	if sc.conn != nil {
		sc.stop()
		sc.conn.Close()
		sc.conn = nil
	}
}

// parseVerdict reads an INSTREAM reply: "stream: OK", "stream: <name>
// FOUND" or "<message> ERROR".
func parseVerdict(reply string) (Verdict, error) {
	msg, ok := strings.CutPrefix(reply, "stream: ")
	switch {
	case limitExceeded(reply):
		return Verdict{}, fmt.Errorf("%w: clamd: %s", ErrScanLimit, printable(reply, 200))
	case ok && msg == "OK":
		return Verdict{}, nil
	case ok && strings.HasSuffix(msg, " FOUND"):
		name := printable(strings.TrimSuffix(msg, " FOUND"), 200)
		if name == "" {
			name = "unnamed malware"
		}
		return Verdict{Infected: true, Signature: name}, nil
	case strings.HasSuffix(reply, "ERROR"):
		return Verdict{}, fmt.Errorf("%w: clamd could not scan: %s", ErrScannerDown, printable(reply, 200))
	}
	return Verdict{}, fmt.Errorf("%w: unexpected clamd reply %q", ErrScannerDown, printable(reply, 200))
}

func limitExceeded(reply string) bool {
	return strings.Contains(reply, "size limit exceeded")
}

// readReply reads one NUL-terminated reply (the "z" command form), up to
// maxReply bytes. A reply without its NUL is an error, so a cut-off answer
// is never taken for a verdict; what was read is returned all the same, for
// recognising a limit message clamd sent before closing the connection.
func readReply(r io.Reader) (string, error) {
	var buf bytes.Buffer
	b := make([]byte, 512)
	for buf.Len() < maxReply {
		n, err := r.Read(b)
		if i := bytes.IndexByte(b[:n], 0); i >= 0 {
			buf.Write(b[:i])
			return strings.TrimSpace(buf.String()), nil
		}
		buf.Write(b[:n])
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return strings.TrimSpace(buf.String()), err
		}
	}
	return strings.TrimSpace(buf.String()), errors.New("reply too long")
}

// printable keeps a string from clamd to printable ASCII of at most n
// bytes, since it ends up in logs and in messages shown to users.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}
