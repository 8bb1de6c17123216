package files_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/testutil/clamdtest"
)

// scan streams data to clamd in pieces of the given sizes (cycled).
func scan(t *testing.T, s *files.Scanner, data []byte, pieces ...int) (files.Verdict, error) {
	t.Helper()
	sc, err := s.Start(t.Context())
	if err != nil {
		return files.Verdict{}, err
	}
	defer sc.Abort()
	if len(pieces) == 0 {
		pieces = []int{len(data) + 1}
	}
	for i := 0; len(data) > 0; i++ {
		n := min(pieces[i%len(pieces)], len(data))
		if err := sc.Write(data[:n]); err != nil {
			return files.Verdict{}, err
		}
		data = data[n:]
	}
	return sc.Finish()
}

func TestScannerClamd(t *testing.T) {
	s := &files.Scanner{Addr: clamdtest.Start(t), Timeout: 30 * time.Second}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	eicar := []byte(clamdtest.EICAR)
	tests := []struct {
		name     string
		data     []byte
		pieces   []int
		infected bool
	}{
		{name: "empty", data: nil},
		{name: "clean text", data: []byte("hello, this is a perfectly ordinary file\n")},
		{name: "clean, larger than one frame", data: randomBytes(3<<20 + 17), pieces: []int{1 << 20}},
		{name: "clean, many small writes", data: randomBytes(200_000), pieces: []int{1000, 7, 65536, 65537}},
		{name: "EICAR", data: eicar, infected: true},
		{name: "EICAR split in three", data: eicar, pieces: []int{20, 30, 18}, infected: true},
		{name: "EICAR byte by byte", data: eicar, pieces: []int{1}, infected: true},
		{name: "EICAR with a byte changed", data: append([]byte("Y"), eicar[1:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := scan(t, s, tt.data, tt.pieces...)
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			if v.Infected != tt.infected {
				t.Fatalf("verdict %+v, want infected=%v", v, tt.infected)
			}
			if tt.infected && !strings.HasPrefix(v.Signature, clamdtest.Signature) {
				t.Fatalf("signature %q, want %s", v.Signature, clamdtest.Signature)
			}
		})
	}
	t.Run("concurrent scans", func(t *testing.T) {
		errs := make(chan error, 8)
		for i := range 8 {
			go func() {
				data := randomBytes(100_000)
				if i%2 == 0 {
					data = eicar
				}
				v, err := scan(t, s, data)
				if err == nil && v.Infected != (i%2 == 0) {
					err = errors.New("wrong verdict")
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		sc, err := s.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Abort()
		cancel()
		err = sc.Write(randomBytes(1000))
		if err == nil {
			_, err = sc.Finish()
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("scan after cancel = %v, want context.Canceled", err)
		}
	})
}

// TestScannerClamdLimit streams more than clamd's StreamMaxLength: clamd
// answers and hangs up, and the scan must say it was the limit.
func TestScannerClamdLimit(t *testing.T) {
	s := &files.Scanner{Addr: clamdtest.StartWith(t, clamdtest.Options{StreamMaxLength: 1 << 20})}
	for _, size := range []int{1<<20 + 1, 8 << 20} {
		_, err := scan(t, s, randomBytes(size), 64<<10)
		if !errors.Is(err, files.ErrScanLimit) {
			t.Fatalf("%d bytes: %v, want ErrScanLimit", size, err)
		}
	}
	// Under the limit is fine.
	if v, err := scan(t, s, randomBytes(1<<20-100)); err != nil || v.Infected {
		t.Fatalf("under the limit: %+v, %v", v, err)
	}
}

func TestScannerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, addr := range []string{closed, filepath.Join(t.TempDir(), "no.sock"), "unix:" + filepath.Join(t.TempDir(), "no.sock")} {
		s := &files.Scanner{Addr: addr, Timeout: 2 * time.Second}
		if err := s.Ping(t.Context()); !errors.Is(err, files.ErrScannerDown) {
			t.Errorf("Ping(%s) = %v, want ErrScannerDown", addr, err)
		}
		if _, err := s.Start(t.Context()); !errors.Is(err, files.ErrScannerDown) {
			t.Errorf("Start(%s) = %v, want ErrScannerDown", addr, err)
		}
	}
}

// fakeClamd serves one behaviour per connection on l, reading an INSTREAM
// stream to its end before answering with reply.
func fakeClamd(t *testing.T, l net.Listener, handle func(c net.Conn)) {
	t.Helper()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// readStream reads a command and, for INSTREAM, its frames up to the
// terminator; it returns the command and the stream's length.
func readStream(c net.Conn) (string, int, error) {
	br := bufio.NewReader(c)
	cmd, err := br.ReadString(0)
	if err != nil {
		return "", 0, err
	}
	if cmd != "zINSTREAM\x00" {
		return cmd, 0, nil
	}
	total := 0
	for {
		var n uint32
		if err := binary.Read(br, binary.BigEndian, &n); err != nil {
			return cmd, total, err
		}
		if n == 0 {
			return cmd, total, nil
		}
		if n > 64<<10 {
			return cmd, total, errors.New("frame larger than 64 KiB")
		}
		if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
			return cmd, total, err
		}
		total += int(n)
	}
}

func TestScannerProtocol(t *testing.T) {
	replyWith := func(reply string) func(net.Conn) {
		return func(c net.Conn) {
			cmd, _, err := readStream(c)
			if err != nil {
				return
			}
			if cmd == "zPING\x00" {
				reply = "PONG"
			}
			io.WriteString(c, reply+"\x00")
		}
	}
	tests := []struct {
		name    string
		handle  func(net.Conn)
		want    files.Verdict
		wantErr error
	}{
		{name: "OK", handle: replyWith("stream: OK"), want: files.Verdict{}},
		{name: "FOUND", handle: replyWith("stream: Win.Test.EICAR_HDB-1 FOUND"), want: files.Verdict{Infected: true, Signature: "Win.Test.EICAR_HDB-1"}},
		{name: "FOUND with control characters", handle: replyWith("stream: Evil\x1b[31m\nName FOUND"), want: files.Verdict{Infected: true, Signature: "Evil[31mName"}},
		{name: "ERROR", handle: replyWith("stream: Can't allocate memory ERROR"), wantErr: files.ErrScannerDown},
		{name: "limit", handle: replyWith("INSTREAM size limit exceeded. ERROR"), wantErr: files.ErrScanLimit},
		{name: "nonsense", handle: replyWith("hello"), wantErr: files.ErrScannerDown},
		{name: "OK cut short", handle: func(c net.Conn) {
			readStream(c)
			io.WriteString(c, "stream: OK") // no NUL: the answer was cut off
		}, wantErr: files.ErrScannerDown},
		{name: "hangs up", handle: func(c net.Conn) { readStream(c) }, wantErr: files.ErrScannerDown},
		{name: "never answers", handle: func(c net.Conn) {
			readStream(c)
			time.Sleep(2 * time.Second)
		}, wantErr: files.ErrScannerDown},
		{name: "limit mid-stream", handle: func(c net.Conn) {
			// As clamd does: answer after a megabyte and hang up, with
			// the client still sending.
			br := bufio.NewReader(c)
			br.ReadString(0)
			io.CopyN(io.Discard, br, 1<<20)
			io.WriteString(c, "INSTREAM size limit exceeded. ERROR\x00")
		}, wantErr: files.ErrScanLimit},
	}
	for _, tt := range tests {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				var l net.Listener
				var addr string
				var err error
				if network == "tcp" {
					l, err = net.Listen("tcp", "127.0.0.1:0")
					addr = l.Addr().String()
				} else {
					addr = filepath.Join(t.TempDir(), "clamd.sock")
					l, err = net.Listen("unix", addr)
				}
				if err != nil {
					t.Fatal(err)
				}
				fakeClamd(t, l, tt.handle)
				s := &files.Scanner{Addr: addr, Timeout: 500 * time.Millisecond}
				v, err := scan(t, s, randomBytes(4<<20), 100_000)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("scan = %+v, %v, want %v", v, err, tt.wantErr)
					}
					return
				}
				if err != nil || v != tt.want {
					t.Fatalf("scan = %+v, %v, want %+v", v, err, tt.want)
				}
			})
		}
	}
}

func TestScanMisuse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var frames []int
	done := make(chan struct{})
	fakeClamd(t, l, func(c net.Conn) {
		defer close(done)
		br := bufio.NewReader(c)
		br.ReadString(0)
		for {
			var n uint32
			if binary.Read(br, binary.BigEndian, &n) != nil {
				return
			}
			frames = append(frames, int(n))
			if n == 0 {
				io.WriteString(c, "stream: OK\x00")
				return
			}
			io.CopyN(io.Discard, br, int64(n))
		}
	})
	s := &files.Scanner{Addr: l.Addr().String(), Timeout: 5 * time.Second}
	sc, err := s.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// An empty write must not send the zero-length frame that ends a stream.
	if err := sc.Write(nil); err != nil {
		t.Fatal(err)
	}
	if err := sc.Write(randomBytes(150_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Finish(); err != nil {
		t.Fatal(err)
	}
	<-done
	if want := []int{65536, 65536, 150_000 - 2*65536, 0}; !equalInts(frames, want) {
		t.Fatalf("frames %v, want %v", frames, want)
	}
	if err := sc.Write([]byte("x")); err == nil {
		t.Fatal("Write after Finish succeeded")
	}
	if _, err := sc.Finish(); err == nil {
		t.Fatal("second Finish succeeded")
	}
	sc.Abort()
	sc.Abort()
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
