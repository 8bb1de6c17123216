package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsConn is the tool's own client end of a WebSocket (RFC 6455), for the
// plain ws:// the tool speaks to a server on loopback. The tool receives
// hundreds of thousands of frames a second on one core, so reading one
// costs it a bufio read and a header, no lock, no context and no select:
// with the general library each frame took a channel select and a watcher
// on its context, and the tool ran out of core before the server did.
//
// One goroutine reads (readMessage); writes (text frames and the replies
// to pings and to a close) may come from any goroutine.
type wsConn struct {
	nc    net.Conn
	br    *bufio.Reader
	limit int64 // the largest message accepted

	wmu       sync.Mutex
	wbuf      []byte // a frame being written, under wmu
	closeSent bool   // under wmu: no data frame may follow a close frame

	closed atomic.Bool
}

// wsGUID is RFC 6455's constant for the Sec-WebSocket-Accept check.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsHandshakeError is a refused upgrade, with the server's status.
type wsHandshakeError struct {
	Status int
	Detail string
}

func (e *wsHandshakeError) Error() string {
	return fmt.Sprintf("websocket handshake: HTTP %d %s", e.Status, e.Detail)
}

// dialWS connects to u (ws://host:port/path?query) from d and upgrades the
// connection. ctx bounds the dial and the handshake only.
func dialWS(ctx context.Context, d *net.Dialer, u *url.URL, readLimit int64) (*wsConn, error) {
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("websocket: only ws:// is supported, not %q", u.Scheme)
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\nUser-Agent: mapsim-bench\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, &wsHandshakeError{Status: resp.StatusCode, Detail: strings.TrimSpace(string(body))}
	}
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return nil, errors.New("websocket handshake: no Upgrade: websocket in the answer")
	case !headerHasToken(resp.Header, "Connection", "upgrade"):
		return nil, errors.New("websocket handshake: no Connection: Upgrade in the answer")
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(key):
		return nil, errors.New("websocket handshake: wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, errors.New("websocket handshake: the server chose an extension the tool did not offer")
	}
	// From here the connection has no deadline. If ctx ended meanwhile,
	// its AfterFunc may be setting one: give up instead.
	if !stop() {
		return nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	ok = true
	return &wsConn{nc: nc, br: br, limit: readLimit}, nil
}

// acceptFor is the Sec-WebSocket-Accept a server answers key with.
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// readMessage reads the next text or binary message into buf (after what
// it holds), answering pings and a close on the way. A close from the
// server ends it with a websocket.CloseError, so websocket.CloseStatus
// gives the code; anything the protocol forbids ends it with an error and
// closes the connection.
func (c *wsConn) readMessage(buf *bytes.Buffer) error {
	inMessage := false
	var size int64
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		if hdr[0]&0x70 != 0 {
			return c.fail("reserved bits set (no extension was agreed)")
		}
		if hdr[1]&0x80 != 0 {
			return c.fail("a masked frame from the server")
		}
		n := int64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return err
			}
			u := binary.BigEndian.Uint64(ext[:])
			if u > 1<<62 {
				return c.fail("frame length out of range")
			}
			n = int64(u)
		}
		if op >= opClose {
			if !fin || n > 125 {
				return c.fail("a fragmented or long control frame")
			}
			var p [125]byte
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return err
			}
			switch op {
			case opPing:
				if err := c.writeFrame(opPong, p[:n]); err != nil {
					return err
				}
			case opPong:
			case opClose:
				return c.closeReceived(p[:n])
			default:
				return c.fail(fmt.Sprintf("unknown control opcode %#x", op))
			}
			continue
		}
		switch {
		case op == opText || op == opBinary:
			if inMessage {
				return c.fail("a new message inside a fragmented one")
			}
			inMessage = true
		case op == opContinuation:
			if !inMessage {
				return c.fail("a continuation frame outside a message")
			}
		default:
			return c.fail(fmt.Sprintf("unknown opcode %#x", op))
		}
		if size += n; size > c.limit {
			return c.fail(fmt.Sprintf("a message over %d bytes", c.limit))
		}
		buf.Grow(int(n))
		p := buf.AvailableBuffer()[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		buf.Write(p) // p is buf's own spare room: this only moves its length
		if fin {
			return nil
		}
	}
}

// closeReceived answers the server's close frame with its code and ends
// the read with it.
func (c *wsConn) closeReceived(p []byte) error {
	ce := websocket.CloseError{Code: websocket.StatusNoStatusRcvd}
	switch {
	case len(p) == 1:
		ce.Code = websocket.StatusProtocolError
	case len(p) >= 2:
		ce.Code = websocket.StatusCode(binary.BigEndian.Uint16(p))
		ce.Reason = string(p[2:])
	}
	echo := p[:min(len(p), 2)]
	c.writeClose(echo)
	c.CloseNow()
	return ce
}

// fail sends a protocol-error close, closes the connection and returns
// the reason as an error.
func (c *wsConn) fail(why string) error {
	c.writeClose(closePayload(websocket.StatusProtocolError, ""))
	c.CloseNow()
	return fmt.Errorf("websocket: %s", why)
}

func closePayload(code websocket.StatusCode, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason[:min(len(reason), 123)]...)
}

// waitFrame returns once the next frame has begun to arrive (or the
// connection has ended, with its error).
func (c *wsConn) waitFrame() error {
	_, err := c.br.Peek(1)
	return err
}

// writeText sends one text message. It has no deadline of its own: a
// caller that must not hang bounds it with CloseNow (writeTextCtx).
func (c *wsConn) writeText(p []byte) error { return c.writeFrame(opText, p) }

// writeTextCtx is writeText bounded by ctx: when ctx ends, a write still
// running fails.
func (c *wsConn) writeTextCtx(ctx context.Context, p []byte) error {
	stop := context.AfterFunc(ctx, func() { c.nc.SetWriteDeadline(time.Unix(1, 0)) })
	err := c.writeFrame(opText, p)
	if !stop() {
		c.nc.SetWriteDeadline(time.Time{})
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// writeFrame writes one frame, masked as a client's must be.
func (c *wsConn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if op == opClose {
		c.closeSent = true
	}
	b := append(c.wbuf[:0], 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range p {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

func (c *wsConn) writeClose(p []byte) { c.writeFrame(opClose, p) }

// Close starts the closing handshake: it sends a close frame with code and
// reason. The reader then ends when the server's answer comes; CloseNow
// ends the connection without waiting.
func (c *wsConn) Close(code websocket.StatusCode, reason string) error {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.writeFrame(opClose, closePayload(code, reason))
}

// CloseNow closes the TCP connection: a read or write running fails.
func (c *wsConn) CloseNow() {
	if c.closed.CompareAndSwap(false, true) {
		c.nc.Close()
	}
}
