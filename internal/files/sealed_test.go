package files_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/files"
)

const (
	headerSize = 8
	chunkOver  = 24 + 16
	fullSealed = files.ChunkSize + chunkOver
)

// MustSeal seals plain in pieces of the given sizes (cycled), checking
// Written and the sealed size on the way.
func MustSeal(tb testing.TB, aead cipher.AEAD, id, plain []byte, pieces ...int) []byte {
	tb.Helper()
	if len(pieces) == 0 {
		pieces = []int{len(plain) + 1}
	}
	var out bytes.Buffer
	w := files.NewWriter(&out, aead, id)
	rest := plain
	for i := 0; len(rest) > 0; i++ {
		n := min(pieces[i%len(pieces)], len(rest))
		got, err := w.Write(rest[:n])
		if err != nil || got != n {
			tb.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
		}
		rest = rest[n:]
		// At most one chunk is ever held back.
		if held := w.Written() - int64(out.Len()-headerSize)/fullSealed*files.ChunkSize; out.Len() > 0 && held > files.ChunkSize {
			tb.Fatalf("writer holds %d plaintext bytes, more than one chunk", held)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	if w.Written() != int64(len(plain)) {
		tb.Fatalf("Written() = %d, want %d", w.Written(), len(plain))
	}
	if want := files.SealedSize(int64(len(plain))); int64(out.Len()) != want {
		tb.Fatalf("sealed %d bytes into %d, SealedSize says %d", len(plain), out.Len(), want)
	}
	return out.Bytes()
}

// open opens sealed with a plainSize and reads all of it.
func readSealed(aead cipher.AEAD, id, sealed []byte, plainSize int64) ([]byte, error) {
	r, err := files.NewReader(bytes.NewReader(sealed), aead, id, plainSize, int64(len(sealed)))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	aead := MustAEAD(t)
	sizes := []int{0, 1, files.ChunkSize - 1, files.ChunkSize, files.ChunkSize + 1, 3 * files.ChunkSize, 3<<20 + 12345}
	pieces := map[string][]int{
		"one write":  nil,
		"odd pieces": {1, 7, 4093, 100_000, files.ChunkSize},
		"bytewise":   {1},
	}
	for _, size := range sizes {
		for name, p := range pieces {
			if name == "bytewise" && size > 2*files.ChunkSize {
				continue
			}
			t.Run(fmt.Sprintf("%d/%s", size, name), func(t *testing.T) {
				id := newID()
				plain := randomBytes(size)
				sealed := MustSeal(t, aead, id, plain, p...)
				if bytes.Contains(sealed, plain[:min(len(plain), 64)]) && len(plain) >= 16 {
					t.Fatal("plaintext appears in the sealed file")
				}
				got, err := readSealed(aead, id, sealed, int64(size))
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(plain))
				}
			})
		}
	}
}

func TestSealedSize(t *testing.T) {
	tests := []struct {
		plain, want int64
	}{
		{0, headerSize + chunkOver},
		{1, headerSize + chunkOver + 1},
		{files.ChunkSize - 1, headerSize + chunkOver + files.ChunkSize - 1},
		{files.ChunkSize, headerSize + 2*chunkOver + files.ChunkSize},
		{3*files.ChunkSize + 5, headerSize + 4*chunkOver + 3*files.ChunkSize + 5},
		{-1, -1},
	}
	for _, tt := range tests {
		if got := files.SealedSize(tt.plain); got != tt.want {
			t.Errorf("SealedSize(%d) = %d, want %d", tt.plain, got, tt.want)
		}
	}
}

func TestSeek(t *testing.T) {
	aead := MustAEAD(t)
	id := newID()
	for _, size := range []int{0, 1, files.ChunkSize, 3*files.ChunkSize + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			plain := randomBytes(size)
			sealed := MustSeal(t, aead, id, plain)
			r, err := files.NewReader(bytes.NewReader(sealed), aead, id, int64(size), int64(len(sealed)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != int64(size) {
				t.Fatalf("Size() = %d, want %d", r.Size(), size)
			}
			offsets := []int{0, 1, size / 2, size - 1, size, size + 1, size + 10*files.ChunkSize,
				files.ChunkSize - 1, files.ChunkSize, files.ChunkSize + 1, 2 * files.ChunkSize}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 50 {
				offsets = append(offsets, rng.IntN(size+1))
			}
			for _, off := range offsets {
				if off < 0 {
					continue
				}
				for _, n := range []int{0, 1, 100, files.ChunkSize + 7, 2 * files.ChunkSize} {
					pos, err := r.Seek(int64(off), io.SeekStart)
					if err != nil || pos != int64(off) {
						t.Fatalf("Seek(%d) = %d, %v", off, pos, err)
					}
					got := make([]byte, n)
					m, err := io.ReadFull(r, got)
					want := plain[min(off, size):min(off+n, size)]
					if !bytes.Equal(got[:m], want) {
						t.Fatalf("at %d, read %d bytes that differ from the plaintext", off, m)
					}
					if m < n && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
						t.Fatalf("at %d, short read of %d/%d: %v", off, m, n, err)
					}
				}
			}
			// Relative seeks.
			if pos, err := r.Seek(-1, io.SeekEnd); size > 0 && (err != nil || pos != int64(size-1)) {
				t.Fatalf("Seek(-1, End) = %d, %v", pos, err)
			}
			if size > 0 {
				b := make([]byte, 1)
				if _, err := io.ReadFull(r, b); err != nil || b[0] != plain[size-1] {
					t.Fatalf("last byte: %v", err)
				}
				if pos, err := r.Seek(0, io.SeekCurrent); err != nil || pos != int64(size) {
					t.Fatalf("Seek(0, Current) after last byte = %d, %v", pos, err)
				}
			}
			if _, err := r.Seek(-1, io.SeekStart); err == nil {
				t.Fatal("Seek to -1 succeeded")
			}
			if _, err := r.Seek(0, 42); err == nil {
				t.Fatal("Seek with a bad whence succeeded")
			}
		})
	}
}

// TestServeContentRange serves a sealed file the way downloads do and asks
// for ranges across chunk boundaries, as a browser resuming a download or
// a video player seeking would.
func TestServeContentRange(t *testing.T) {
	aead := MustAEAD(t)
	id := newID()
	plain := randomBytes(5*files.ChunkSize + 999)
	sealed := MustSeal(t, aead, id, plain)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd, err := files.NewReader(bytes.NewReader(sealed), aead, id, int64(len(plain)), int64(len(sealed)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, rd)
	}))
	defer srv.Close()

	tests := []struct {
		rng        string
		start, end int // inclusive
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=65530-65545", 65530, 65545},
		{"bytes=100000-300000", 100000, 300000},
		{fmt.Sprintf("bytes=-%d", 1000), len(plain) - 1000, len(plain) - 1},
		{fmt.Sprintf("bytes=%d-", len(plain)-5), len(plain) - 5, len(plain) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("Range", tt.rng)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !bytes.Equal(body, plain[tt.start:tt.end+1]) {
				t.Fatalf("range %s: got %d bytes that differ from the plaintext", tt.rng, len(body))
			}
		})
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, plain) {
		t.Fatal("whole file differs from the plaintext")
	}
}

// chunkAt returns the byte range of chunk i in a sealed file of plain bytes.
func chunkAt(plain, i int) (start, end int) {
	start = headerSize + i*fullSealed
	last := plain / files.ChunkSize
	if i < last {
		return start, start + fullSealed
	}
	return start, start + chunkOver + plain%files.ChunkSize
}

func TestTamper(t *testing.T) {
	aead := MustAEAD(t)
	id := newID()
	const size = 3*files.ChunkSize + 100 // chunks 0-2 full, chunk 3 holds 100 bytes
	plain := randomBytes(size)
	sealed := MustSeal(t, aead, id, plain)
	other := MustSeal(t, aead, newID(), randomBytes(size)) // same key, another file
	chunk := func(b []byte, i int) []byte { s, e := chunkAt(size, i); return b[s:e] }
	edit := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(sealed))
	}

	type tamper struct {
		name      string
		sealed    []byte
		plainSize int64
		aead      cipher.AEAD
		// goodPrefix is how much verified plaintext may come out before
		// the error; -1 when NewReader itself must refuse.
		goodPrefix int
	}
	tests := []tamper{
		{name: "header", sealed: edit(func(b []byte) []byte { b[3] ^= 1; return b }), goodPrefix: -1},
		{name: "wrong plain size (smaller)", plainSize: size - 1, goodPrefix: -1},
		{name: "wrong plain size (larger)", plainSize: size + 1, goodPrefix: -1},
		{name: "wrong key", aead: MustAEAD(t), goodPrefix: 0},
		{name: "truncated at a chunk boundary", sealed: sealed[:headerSize+3*fullSealed], goodPrefix: -1},
		{name: "truncated mid-chunk", sealed: sealed[:headerSize+fullSealed+1000], goodPrefix: -1},
		{name: "truncated to the header", sealed: sealed[:headerSize], goodPrefix: -1},
		{name: "empty file", sealed: []byte{}, goodPrefix: -1},
		// With the recorded size changed to match the cut, the sizes
		// agree and only the chunks themselves can tell.
		{name: "truncated mid-chunk, size adjusted",
			sealed:     sealed[:headerSize+fullSealed+chunkOver+1000],
			plainSize:  files.ChunkSize + 1000,
			goodPrefix: files.ChunkSize},
		{name: "truncated at a chunk boundary, size adjusted",
			// Two full chunks and the first 40 bytes of the third look
			// like a file of exactly 2 chunks and an empty last one.
			sealed:     sealed[:headerSize+2*fullSealed+chunkOver],
			plainSize:  2 * files.ChunkSize,
			goodPrefix: 2 * files.ChunkSize},
		{name: "last chunk dropped, forged empty last chunk",
			sealed:     append(bytes.Clone(sealed[:headerSize+3*fullSealed]), randomBytes(chunkOver)...),
			plainSize:  3 * files.ChunkSize,
			goodPrefix: 3 * files.ChunkSize},
		{name: "chunk appended", sealed: append(bytes.Clone(sealed), chunk(sealed, 1)...), goodPrefix: -1},
		{name: "chunk appended, size adjusted",
			sealed:     append(bytes.Clone(sealed), chunk(sealed, 1)...),
			plainSize:  size + files.ChunkSize,
			goodPrefix: 3 * files.ChunkSize},
		{name: "chunks 0 and 1 swapped", sealed: edit(func(b []byte) []byte {
			c0, c1 := bytes.Clone(chunk(b, 0)), bytes.Clone(chunk(b, 1))
			copy(chunk(b, 0), c1)
			copy(chunk(b, 1), c0)
			return b
		}), goodPrefix: 0},
		{name: "chunks 1 and 2 swapped", sealed: edit(func(b []byte) []byte {
			c1, c2 := bytes.Clone(chunk(b, 1)), bytes.Clone(chunk(b, 2))
			copy(chunk(b, 1), c2)
			copy(chunk(b, 2), c1)
			return b
		}), goodPrefix: files.ChunkSize},
		{name: "chunk duplicated", sealed: edit(func(b []byte) []byte {
			copy(chunk(b, 2), chunk(b, 1))
			return b
		}), goodPrefix: 2 * files.ChunkSize},
		{name: "chunk from another file", sealed: edit(func(b []byte) []byte {
			copy(chunk(b, 1), chunk(other, 1))
			return b
		}), goodPrefix: files.ChunkSize},
		{name: "last chunk from another file", sealed: edit(func(b []byte) []byte {
			copy(chunk(b, 3), chunk(other, 3))
			return b
		}), goodPrefix: 3 * files.ChunkSize},
		{name: "whole file of another id", sealed: other, goodPrefix: 0},
	}
	for i := range 4 {
		for _, where := range []struct {
			name string
			off  func(s, e int) int
		}{
			{"nonce", func(s, e int) int { return s + 3 }},
			{"ciphertext", func(s, e int) int { return s + 24 + (e-s-40)/2 }},
			{"tag", func(s, e int) int { return e - 1 }},
		} {
			tests = append(tests, tamper{
				name: fmt.Sprintf("bit flip in chunk %d %s", i, where.name),
				sealed: edit(func(b []byte) []byte {
					s, e := chunkAt(size, i)
					b[where.off(s, e)] ^= 0x10
					return b
				}),
				goodPrefix: i * files.ChunkSize,
			})
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ps, a := tt.sealed, tt.plainSize, tt.aead
			if s == nil {
				s = sealed
			}
			if ps == 0 {
				ps = size
			}
			if a == nil {
				a = aead
			}
			r, err := files.NewReader(bytes.NewReader(s), a, id, ps, int64(len(s)))
			if tt.goodPrefix < 0 {
				if !errors.Is(err, files.ErrCorrupt) {
					t.Fatalf("NewReader = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader refused a file whose sizes agree: %v", err)
			}
			got, err := io.ReadAll(r)
			if !errors.Is(err, files.ErrCorrupt) {
				t.Fatalf("read %d bytes and %v, want ErrCorrupt", len(got), err)
			}
			if !bytes.Equal(got, plain[:tt.goodPrefix]) {
				t.Fatalf("read %d bytes before the error, want exactly the %d verified ones", len(got), tt.goodPrefix)
			}
			// The error sticks, wherever the reader goes next.
			if _, err := r.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, files.ErrCorrupt) {
				t.Fatalf("Read after corruption = %d, %v", n, err)
			}
		})
	}
}

// TestTamperSeek reads a damaged chunk directly after a seek, as a Range
// request would, without passing through the chunks before it.
func TestTamperSeek(t *testing.T) {
	aead := MustAEAD(t)
	id := newID()
	plain := randomBytes(3 * files.ChunkSize)
	sealed := MustSeal(t, aead, id, plain)
	s, e := chunkAt(len(plain), 2)
	sealed[(s+e)/2] ^= 1
	r, err := files.NewReader(bytes.NewReader(sealed), aead, id, int64(len(plain)), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seek(2*files.ChunkSize+10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 100)); n != 0 || !errors.Is(err, files.ErrCorrupt) {
		t.Fatalf("Read of a damaged chunk = %d, %v", n, err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	aead := MustAEAD(t)
	t.Run("write fails", func(t *testing.T) {
		w := files.NewWriter(&failingWriter{after: 2}, aead, newID())
		_, err := w.Write(randomBytes(3 * files.ChunkSize))
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Write = %v, want the writer's error", err)
		}
		if _, err2 := w.Write([]byte("x")); err2 == nil {
			t.Fatal("Write after a failure succeeded")
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close after a failure succeeded")
		}
	})
	t.Run("short file id", func(t *testing.T) {
		w := files.NewWriter(io.Discard, aead, make([]byte, 15))
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("Write with a 15-byte file id succeeded")
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close with a 15-byte file id succeeded")
		}
	})
	t.Run("wrong cipher", func(t *testing.T) {
		block, _ := aes.NewCipher(make([]byte, 32))
		gcm, _ := cipher.NewGCM(block)
		if err := files.NewWriter(io.Discard, gcm, newID()).Close(); err == nil {
			t.Fatal("Close with AES-GCM succeeded")
		}
		if _, err := files.NewReader(bytes.NewReader(nil), gcm, newID(), 0, files.SealedSize(0)); err == nil {
			t.Fatal("NewReader with AES-GCM succeeded")
		}
	})
	t.Run("write after close", func(t *testing.T) {
		w := files.NewWriter(io.Discard, aead, newID())
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
	})
}

func BenchmarkWriter(b *testing.B) {
	aead := MustAEAD(b)
	id := newID()
	plain := randomBytes(4 << 20)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		w := files.NewWriter(io.Discard, aead, id)
		for p := plain; len(p) > 0; p = p[32<<10:] {
			w.Write(p[:32<<10])
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	aead := MustAEAD(b)
	id := newID()
	plain := randomBytes(4 << 20)
	sealed := MustSeal(b, aead, id, plain)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := files.NewReader(bytes.NewReader(sealed), aead, id, int64(len(plain)), int64(len(sealed)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
