package e2ee_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

const chunk = e2ee.FileChunkSize

// sealedChunk is the size of a full chunk's ciphertext.
const sealedChunk = chunk + e2ee.TagSize

// filePlain returns n bytes of plaintext: byte i is i mod 251, so that no
// two chunks are alike.
func filePlain(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// MustEncryptFile encrypts plain, written in pieces of step bytes (all at
// once if step is 0), and returns the ciphertext and its SHA-256.
func MustEncryptFile(tb testing.TB, plain []byte, key [32]byte, prefix [8]byte, step int) ([]byte, [32]byte) {
	tb.Helper()
	var out bytes.Buffer
	w := e2ee.NewFileWriter(&out, key, prefix)
	if step == 0 {
		step = max(1, len(plain))
	}
	for rest := plain; len(rest) > 0; {
		n := min(step, len(rest))
		if k, err := w.Write(rest[:n]); err != nil || k != n {
			tb.Fatalf("wrote %d of %d: %v", k, n, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes(), w.CiphertextSHA256()
}

func TestFileRoundTrip(t *testing.T) {
	key, prefix := e2ee.NewFileKey()
	tests := []struct {
		name   string
		size   int
		step   int
		chunks int
	}{
		{"empty", 0, 0, 1},
		{"one byte", 1, 0, 1},
		{"a chunk less one", chunk - 1, 1000, 1},
		{"one chunk", chunk, 0, 1},
		{"one chunk and a byte", chunk + 1, 7, 2},
		{"two and a half chunks", chunk * 5 / 2, 4096, 3},
		{"three chunks", 3 * chunk, chunk, 3},
		{"three chunks, odd writes", 3 * chunk, chunk + 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain := filePlain(tt.size)
			ct, sum := MustEncryptFile(t, plain, key, prefix, tt.step)
			if want := tt.size + tt.chunks*e2ee.TagSize; len(ct) != want {
				t.Fatalf("ciphertext of %d bytes, want %d", len(ct), want)
			}
			if e2ee.EncryptedFileSize(int64(tt.size)) != int64(len(ct)) {
				t.Fatalf("EncryptedFileSize(%d) = %d, ciphertext is %d", tt.size, e2ee.EncryptedFileSize(int64(tt.size)), len(ct))
			}
			if sum != sha256.Sum256(ct) {
				t.Fatal("CiphertextSHA256 is not the ciphertext's")
			}
			// Read it back through a source that gives one byte at a time,
			// with every way of reading iotest knows.
			r := e2ee.NewFileReader(iotest.OneByteReader(bytes.NewReader(ct)), key, prefix, sum)
			if err := iotest.TestReader(r, plain); err != nil {
				t.Fatal(err)
			}
		})
	}
	if e2ee.EncryptedFileSize(-1) != -1 || e2ee.EncryptedFileSize(1<<62) != -1 {
		t.Fatal("EncryptedFileSize takes sizes the format cannot hold")
	}
}

// chunks cuts a ciphertext into its chunks.
func chunks(ct []byte) [][]byte {
	var out [][]byte
	for len(ct) > sealedChunk {
		out = append(out, ct[:sealedChunk])
		ct = ct[sealedChunk:]
	}
	return append(out, ct)
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestFileTampering reads altered ciphertexts. Each is refused, with the
// SHA-256 of the altered bytes given as expected, so that the chunks
// themselves must catch it, and before the refusal the reader has returned
// only a prefix of the true plaintext.
func TestFileTampering(t *testing.T) {
	key, prefix := e2ee.NewFileKey()
	plain := filePlain(chunk * 5 / 2)
	ct, _ := MustEncryptFile(t, plain, key, prefix, 0)
	c := chunks(ct)
	if len(c) != 3 {
		t.Fatalf("%d chunks", len(c))
	}
	exact := filePlain(2 * chunk)
	ect, _ := MustEncryptFile(t, exact, key, prefix, 0)
	e := chunks(ect)
	otherKey, otherPrefix := e2ee.NewFileKey()

	tests := []struct {
		name   string
		plain  []byte // the file it was
		ct     []byte
		key    [32]byte
		prefix [8]byte
		sum    *[32]byte // nil: the altered ciphertext's own
		want   string
	}{
		{"intact", plain, ct, key, prefix, nil, "ok"},
		{"truncated after chunk 1", plain, join(c[0], c[1]), key, prefix, nil, "truncated"},
		{"truncated after chunk 0", plain, c[0], key, prefix, nil, "truncated"},
		{"exact file truncated after chunk 0", exact, e[0], key, prefix, nil, "truncated"},
		{"truncated inside the last chunk", plain, ct[:len(ct)-100], key, prefix, nil, "altered"},
		{"last byte cut", plain, ct[:len(ct)-1], key, prefix, nil, "altered"},
		{"truncated inside the tag of chunk 0", plain, ct[:10], key, prefix, nil, "truncated"},
		{"empty", plain, nil, key, prefix, nil, "truncated"},
		{"chunks 0 and 1 swapped", plain, join(c[1], c[0], c[2]), key, prefix, nil, "altered"},
		{"chunk 1 dropped", plain, join(c[0], c[2]), key, prefix, nil, "altered"},
		{"chunk 0 twice", plain, join(c[0], c[0], c[1], c[2]), key, prefix, nil, "altered"},
		{"a byte appended", plain, join(ct, []byte{0}), key, prefix, nil, "altered"},
		{"a byte appended to an exact file", exact, join(ect, []byte{0}), key, prefix, nil, "altered"},
		{"the last chunk twice", plain, join(ct, c[2]), key, prefix, nil, "altered"},
		{"another file's chunk appended", exact, join(ect, c[2]), key, prefix, nil, "altered"},
		{"flipped bit in chunk 0", plain, join(flip(c[0], 100), c[1], c[2]), key, prefix, nil, "altered"},
		{"flipped bit in chunk 1's tag", plain, join(c[0], flip(c[1], sealedChunk-1), c[2]), key, prefix, nil, "altered"},
		{"flipped bit in the last chunk", plain, join(c[0], c[1], flip(c[2], 0)), key, prefix, nil, "altered"},
		{"another file's SHA-256", plain, ct, key, prefix, &[32]byte{1}, "altered"},
		{"another key", plain, ct, otherKey, prefix, nil, "altered"},
		{"another nonce prefix", plain, ct, key, otherPrefix, nil, "altered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := sha256.Sum256(tt.ct)
			if tt.sum != nil {
				want = *tt.sum
			}
			got, err := io.ReadAll(e2ee.NewFileReader(bytes.NewReader(tt.ct), tt.key, tt.prefix, want))
			wantClass(t, err, tt.want)
			if !bytes.HasPrefix(tt.plain, got) {
				t.Fatalf("returned %d bytes that are not the file's", len(got))
			}
			if err == nil && len(got) != len(tt.plain) {
				t.Fatalf("returned %d bytes of %d", len(got), len(tt.plain))
			}
			if tt.sum != nil && len(got) > 2*chunk {
				t.Fatal("returned the last chunk of a file whose SHA-256 is wrong")
			}
		})
	}
}

// TestFileEmptyLastChunk refuses a trailing empty chunk after full ones,
// which a writer that counted chunks as floor(n/64 KiB)+1 would make: the
// format has one encoding of every file.
func TestFileEmptyLastChunk(t *testing.T) {
	key, prefix := e2ee.NewFileKey()
	plain := filePlain(chunk)
	gcm := refGCM(t, key[:])
	iv := func(i byte) []byte { return append(append([]byte(nil), prefix[:]...), 0, 0, 0, i) }
	ct := join(gcm.Seal(nil, iv(0), plain, refChunkAAD(0, false)), gcm.Seal(nil, iv(1), nil, refChunkAAD(1, true)))
	_, err := io.ReadAll(e2ee.NewFileReader(bytes.NewReader(ct), key, prefix, sha256.Sum256(ct)))
	wantClass(t, err, "malformed")
}

// TestFileReaderSourceError passes on an error of the source, which is not
// the file's fault.
func TestFileReaderSourceError(t *testing.T) {
	key, prefix := e2ee.NewFileKey()
	boom := errors.New("connection reset")
	_, err := io.ReadAll(e2ee.NewFileReader(iotest.ErrReader(boom), key, prefix, [32]byte{}))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestFileWriterErrors(t *testing.T) {
	key, prefix := e2ee.NewFileKey()
	w := e2ee.NewFileWriter(&failingWriter{n: sealedChunk + 10}, key, prefix)
	if _, err := w.Write(filePlain(3 * chunk)); !errors.Is(err, errDiskFull) {
		t.Fatalf("write: %v", err)
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, errDiskFull) {
		t.Fatalf("write after a failure: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errDiskFull) {
		t.Fatalf("close after a failure: %v", err)
	}

	var out bytes.Buffer
	w = e2ee.NewFileWriter(&out, key, prefix)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("write after close accepted")
	}
	if out.Len() != e2ee.TagSize {
		t.Fatalf("an empty file is %d bytes, want one empty chunk", out.Len())
	}
}
