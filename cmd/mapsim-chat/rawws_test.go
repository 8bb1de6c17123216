package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn is a TCP connection on which a test speaks HTTP and WebSocket by
// hand, to send what no well-behaved client library would: half a request,
// an unmasked frame, a stream of pings.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

// rawDial opens a TCP connection to the server; the caller closes it.
func (s *testServer) rawDial() (*rawConn, error) {
	conn, err := net.DialTimeout("tcp", s.host(), 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: conn, r: bufio.NewReader(conn)}, nil
}

// host is the server's host:port, as a client puts it in Host.
func (s *testServer) host() string { return strings.TrimPrefix(s.URL, "http://") }

// upgradeRequest is a request that asks /ws?query to become a WebSocket,
// with extra header lines such as "Authorization: Bearer …".
func (s *testServer) upgradeRequest(query string, header ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET /ws?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", query, s.host())
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// MustUpgrade opens a raw connection and upgrades it to a WebSocket,
// authenticated by token; it is closed when the test ends.
func (s *testServer) MustUpgrade(t testing.TB, token string) *rawConn {
	t.Helper()
	c, err := s.rawDial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, s.upgradeRequest("chat_name=global", "Authorization: Bearer "+token)); err != nil {
		t.Fatal(err)
	}
	if err := c.readUpgrade(); err != nil {
		t.Fatal(err)
	}
	return c
}

// readUpgrade reads the answer to an upgrade request: nil for 101.
func (c *rawConn) readUpgrade() error {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("upgrade: %s %s", resp.Status, body)
	}
	return nil
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// appendFrame appends one final frame. Clients must mask (§5.3); masked
// false leaves the mask out, which a server must treat as a protocol error.
func appendFrame(dst []byte, opcode byte, payload []byte, masked bool) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	dst = append(dst, 0x80|opcode)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, maskBit|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, maskBit|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, maskBit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !masked {
		return append(dst, payload...)
	}
	key := [4]byte{0x1b, 0x2c, 0x3d, 0x4e}
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i%4])
	}
	return dst
}

// readFrame reads one frame from the server (whose frames are never
// masked) and returns its opcode and payload.
func (c *rawConn) readFrame() (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if h[1]&0x80 != 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("not a frame a server sends: % x, length %d", h, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0F, payload, nil
}

// closeCode reads frames until the server's close frame and returns its
// status code (1005 for a close frame without one), or an error when the
// connection ends without a close frame or none comes within 15 s.
func (c *rawConn) closeCode() (int, error) {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		op, payload, err := c.readFrame()
		if err != nil {
			return 0, fmt.Errorf("no close frame: %w", err)
		}
		if op != opClose {
			continue
		}
		if len(payload) < 2 {
			return 1005, nil
		}
		return int(binary.BigEndian.Uint16(payload)), nil
	}
}
