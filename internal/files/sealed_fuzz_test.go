package files_test

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/cryptotest"

	"github.com/mapsim/mapsim-chat/internal/files"
	"golang.org/x/crypto/chacha20poly1305"
)

// maxFuzzPlain bounds the plaintexts the fuzzers seal: up to three full
// chunks and a bit, enough for every boundary the format has.
const maxFuzzPlain = 3*files.ChunkSize + 2

// fuzzFileID is the file id every fuzzed file is sealed under.
var fuzzFileID = []byte("fuzz-file-id-16b")

// fuzzAEAD returns an XChaCha20-Poly1305 under a fixed key and makes the
// nonces the Writer draws repeatable, so that a failing input sealed
// again gives the same bytes.
func fuzzAEAD(t *testing.T) cipher.AEAD {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 1)
	aead, err := chacha20poly1305.NewX(bytes.Repeat([]byte{0x5e}, chacha20poly1305.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// fuzzPlain stretches pattern to size%maxFuzzPlain bytes; each repeat is
// changed a little, so no two chunks hold the same plaintext.
func fuzzPlain(pattern []byte, size uint32) []byte {
	if len(pattern) == 0 {
		pattern = []byte{0}
	}
	plain := make([]byte, int(size%maxFuzzPlain))
	for i := range plain {
		plain[i] = pattern[i%len(pattern)] ^ byte(i/len(pattern))
	}
	return plain
}

// fuzzPieces turns bytes into write sizes from 1 up to about four chunks,
// most of them small.
func fuzzPieces(b []byte) []int {
	var pieces []int
	for _, c := range b {
		pieces = append(pieces, 1+int(c)*int(c)*4)
	}
	return pieces
}

// FuzzSealedRoundTrip seals arbitrary plaintexts written in arbitrary
// pieces and reads them back whole and from an arbitrary offset.
func FuzzSealedRoundTrip(f *testing.F) {
	for _, size := range []uint32{0, 1, 100, files.ChunkSize - 1, files.ChunkSize, files.ChunkSize + 1, 2 * files.ChunkSize, 3*files.ChunkSize + 1} {
		f.Add([]byte("plaintext"), size, []byte{}, size/2)
		f.Add([]byte{0xff, 0}, size, []byte{0, 3, 255, 128}, size)
	}
	f.Fuzz(func(t *testing.T, pattern []byte, size uint32, pieces []byte, at uint32) {
		aead := fuzzAEAD(t)
		plain := fuzzPlain(pattern, size)
		sealed := MustSeal(t, aead, fuzzFileID, plain, fuzzPieces(pieces)...)
		r, err := files.NewReader(bytes.NewReader(sealed), aead, fuzzFileID, int64(len(plain)), int64(len(sealed)))
		if err != nil {
			t.Fatalf("NewReader refused a file just sealed: %v", err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("read back %d bytes (%v); sealed %d", len(got), err, len(plain))
		}
		off := int64(at) % int64(len(plain)+2) // the end and one past it too
		if pos, err := r.Seek(off, io.SeekStart); err != nil || pos != off {
			t.Fatalf("Seek(%d) = %d, %v", off, pos, err)
		}
		got, err = io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain[min(off, int64(len(plain))):]) {
			t.Fatalf("read %d bytes (%v) from offset %d of %d", len(got), err, off, len(plain))
		}
	})
}

// Edits FuzzSealedTamper applies to a sealed file, five bytes each: an
// operation, a three-byte offset (taken modulo the file's length) and a
// value.
const (
	editXOR       = iota // flip the bits of value at offset
	editTruncate         // cut the file at offset
	editInsert           // insert value at offset
	editDelete           // delete the byte at offset
	editSwap             // swap the chunk at offset with chunk number value
	editDuplicate        // append a copy of the chunk at offset
	editOps
)

// applyEdits returns sealed with the edits encoded in ops applied.
func applyEdits(sealed, ops []byte) []byte {
	b := bytes.Clone(sealed)
	const header = 8
	chunk := func(i int) (int, int) { // bounds of the i'th full-size slot
		s := header + i*fullSealed
		return min(s, len(b)), min(s+fullSealed, len(b))
	}
	for ; len(ops) >= 5; ops = ops[5:] {
		op, value := ops[0]%editOps, ops[4]
		off := int(ops[1])<<16 | int(ops[2])<<8 | int(ops[3])
		off %= len(b) + 1
		switch op {
		case editXOR:
			if off < len(b) {
				b[off] ^= value
			}
		case editTruncate:
			b = b[:off]
		case editInsert:
			b = append(b[:off], append([]byte{value}, b[off:]...)...)
		case editDelete:
			if off < len(b) {
				b = append(b[:off], b[off+1:]...)
			}
		case editSwap:
			i, j := max(off-header, 0)/fullSealed, int(value)
			si, ei := chunk(i)
			sj, ej := chunk(j)
			if ei-si == ej-sj && si != sj {
				tmp := bytes.Clone(b[si:ei])
				copy(b[si:ei], b[sj:ej])
				copy(b[sj:ej], tmp)
			}
		case editDuplicate:
			s, e := chunk(max(off-header, 0) / fullSealed)
			b = append(b, b[s:e]...)
		}
	}
	return b
}

// plainSizeFor returns the plaintext size whose sealed form is exactly n
// bytes long, if there is one: the size a tamperer would record beside a
// file cut or extended to n bytes.
func plainSizeFor(n int64) (int64, bool) {
	for chunks := int64(1); 8+chunks*40 <= n; chunks++ {
		if p := n - 8 - chunks*40; files.SealedSize(p) == n {
			return p, true
		}
	}
	return 0, false
}

// readChecked reads a sealed file twice, each time through a new Reader:
// whole, from the start, and tail, after a seek to at, as a Range request
// would. Each holds what came out before any error, and err and tailErr
// that error (nil at the end of the file; NewReader's own when it refused).
// It fails the test if the readers allocate more than a few chunks,
// whatever sizes they were told.
func readChecked(t *testing.T, aead cipher.AEAD, sealed []byte, plainSize, sealedSize, at int64) (whole []byte, err error, tail []byte, tailErr error) {
	t.Helper()
	whole = make([]byte, 0, maxFuzzPlain)
	tail = make([]byte, 0, maxFuzzPlain)
	buf := make([]byte, 7000) // not a divisor of the chunk size
	read := func(out []byte, at int64) ([]byte, error) {
		r, err := files.NewReader(bytes.NewReader(sealed), aead, fuzzFileID, plainSize, sealedSize)
		if err != nil {
			return out, err
		}
		if pos, err := r.Seek(at, io.SeekStart); err != nil || pos != at {
			t.Fatalf("Seek(%d) = %d, %v", at, pos, err)
		}
		for {
			n, err := r.Read(buf)
			if len(out)+n > cap(out) {
				t.Fatalf("read more than any plaintext sealed here, under plain size %d", plainSize)
			}
			out = append(out, buf[:n]...)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	whole, err = read(whole, 0)
	tail, tailErr = read(tail, at)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*fullSealed {
		t.Fatalf("reading under plain size %d and sealed size %d allocated %d bytes", plainSize, sealedSize, grew)
	}
	return whole, err, tail, tailErr
}

// FuzzSealedTamper reads sealed files that were edited, or that are
// arbitrary bytes, under recorded sizes that may lie: the reader returns
// the original plaintext or an error, and never a byte that did not
// authenticate.
func FuzzSealedTamper(f *testing.F) {
	edit := func(op, value byte, off int) []byte {
		return []byte{op, byte(off >> 16), byte(off >> 8), byte(off), value}
	}
	chunk1 := 8 + fullSealed
	for _, e := range [][]byte{
		nil,
		edit(editXOR, 1, 3),                // header
		edit(editXOR, 0x10, 8+3),           // first nonce
		edit(editXOR, 0x80, chunk1-1),      // first tag
		edit(editXOR, 0, 100),              // no change at all
		edit(editTruncate, 0, chunk1),      // at a chunk boundary
		edit(editTruncate, 0, chunk1+1000), // mid-chunk
		edit(editInsert, 'x', chunk1),      // a byte between chunks
		edit(editDelete, 0, 9),             // a byte of the first nonce
		edit(editSwap, 1, 8),               // chunks 0 and 1
		edit(editDuplicate, 0, chunk1+5),   // chunk 1 appended
		append(edit(editXOR, 1, 50), edit(editXOR, 1, 50)...), // flipped and back
	} {
		for _, claim := range []int64{0, 1, -1, 1 << 40, 1 << 62} {
			f.Add([]byte("sealed"), uint32(2*files.ChunkSize+100), e, claim, false, uint32(files.ChunkSize+5))
		}
	}
	header := append([]byte("MSCFILE1"), make([]byte, 40)...)
	f.Add(header, uint32(0), []byte{}, int64(0), true, uint32(0))
	f.Add(header, uint32(0), []byte{}, int64(1<<60), true, uint32(1<<31))
	f.Add(append(header, make([]byte, 100)...), uint32(0), []byte{}, int64(100), true, uint32(0))
	f.Add([]byte{}, uint32(0), []byte{}, int64(-1), true, uint32(0))

	f.Fuzz(func(t *testing.T, file []byte, size uint32, edits []byte, claim int64, raw bool, at uint32) {
		aead := fuzzAEAD(t)
		if raw {
			// Arbitrary bytes, under any recorded size: nothing forged
			// without the key authenticates. The sealed size is the file's
			// own, or the one the recorded plain size implies while the
			// file on disk is shorter or longer.
			for _, sealedSize := range []int64{int64(len(file)), files.SealedSize(claim)} {
				whole, err, tail, tailErr := readChecked(t, aead, file, claim, sealedSize, int64(at))
				if len(whole) > 0 || len(tail) > 0 || !errors.Is(err, files.ErrCorrupt) || !errors.Is(tailErr, files.ErrCorrupt) {
					t.Fatalf("%d arbitrary bytes as %d plaintext bytes: read %d+%d bytes, %v, %v", len(file), claim, len(whole), len(tail), err, tailErr)
				}
			}
			return
		}
		plain := fuzzPlain(file, size)
		sealed := MustSeal(t, aead, fuzzFileID, plain)
		edited := applyEdits(sealed, edits)
		// claim 0 records the true size, 1 the size that agrees with the
		// edited file's length (a tamperer who also edits the database),
		// anything else that much more or less.
		plainSize := int64(len(plain)) + claim
		switch claim {
		case 0:
			plainSize = int64(len(plain))
		case 1:
			if p, ok := plainSizeFor(int64(len(edited))); ok {
				plainSize = p
			}
		}
		intact := bytes.Equal(edited, sealed) && plainSize == int64(len(plain))
		at64 := int64(at) % (int64(len(plain)) + 2)
		whole, err, tail, tailErr := readChecked(t, aead, edited, plainSize, int64(len(edited)), at64)
		if intact {
			if err != nil || !bytes.Equal(whole, plain) || tailErr != nil || !bytes.Equal(tail, plain[min(at64, int64(len(plain))):]) {
				t.Fatalf("intact file of %d bytes: read %d bytes (%v) and from %d, %d bytes (%v)", len(plain), len(whole), err, at64, len(tail), tailErr)
			}
			return
		}
		if !errors.Is(err, files.ErrCorrupt) {
			t.Fatalf("edited file read whole: %d bytes and %v, want ErrCorrupt", len(whole), err)
		}
		if len(whole) > len(plain) || !bytes.Equal(whole, plain[:len(whole)]) {
			t.Fatalf("edited file: the %d bytes read before the error are not the plaintext", len(whole))
		}
		// From an offset, the chunks before it are not read, so damage
		// there goes unseen; but every byte that comes out is the
		// plaintext's at its place, and the end is reached only through a
		// last chunk that authenticates, under the true size.
		rest := plain[min(at64, int64(len(plain))):]
		if len(tail) > len(rest) || !bytes.Equal(tail, rest[:len(tail)]) {
			t.Fatalf("edited file: the %d bytes read from %d are not the plaintext", len(tail), at64)
		}
		if tailErr == nil && (plainSize != int64(len(plain)) || len(tail) != len(rest)) {
			t.Fatalf("edited file: read %d bytes from %d to the end under plain size %d, of %d", len(tail), at64, plainSize, len(plain))
		}
		if tailErr != nil && !errors.Is(tailErr, files.ErrCorrupt) {
			t.Fatalf("edited file read from %d: %v, want ErrCorrupt", at64, tailErr)
		}
	})
}
