package files

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ChunkSize is the number of plaintext bytes sealed in one chunk. A chunk is
// the unit of memory for writing and of work for a seek: large enough that
// the per-chunk overhead (40 bytes) is below 0.1 %, small enough that a
// Range request near the end of a big file decrypts little it does not send.
const ChunkSize = 64 << 10

// The sealed format: header, then chunks. Chunk i holds plaintext bytes
// [i*ChunkSize, (i+1)*ChunkSize); every chunk but the last is full, and the
// last holds plain%ChunkSize bytes, so a plaintext of n*ChunkSize bytes
// (including 0) ends with an empty last chunk. The sizes of all chunks thus
// follow from the plaintext size alone, which is what makes seeking possible
// without an index.
const (
	magic      = "MSCFILE1"
	headerSize = len(magic)
	nonceSize  = 24 // XChaCha20-Poly1305
	tagSize    = 16 // Poly1305
	chunkOver  = nonceSize + tagSize
	fullSealed = nonceSize + ChunkSize + tagSize
	fileIDSize = 16
	chunkLabel = "mapsim-chat/v1/file-chunk"
	// maxPlain keeps SealedSize far from overflowing int64.
	maxPlain = 1 << 60
)

// SealedSize returns the exact number of bytes the sealed form of a
// plaintext of plain bytes takes on disk, so that a stored file's size can
// be checked against its recorded plaintext size before anything is read.
// It returns -1 for a negative size or one too large for the format.
func SealedSize(plain int64) int64 {
	if plain < 0 || plain > maxPlain {
		return -1
	}
	chunks := plain/ChunkSize + 1
	return int64(headerSize) + chunks*chunkOver + plain
}

// checkParams rejects a cipher or file id the format cannot use. The sizes
// are fixed by the format (SealedSize knows them without a cipher), so a
// different AEAD would write files nothing could read.
func checkParams(aead cipher.AEAD, fileID []byte) error {
	if aead == nil || aead.NonceSize() != nonceSize || aead.Overhead() != tagSize {
		return errors.New("files: the cipher must be XChaCha20-Poly1305 (24-byte nonce, 16-byte tag)")
	}
	if len(fileID) != fileIDSize {
		return fmt.Errorf("files: file id must be %d bytes, not %d", fileIDSize, len(fileID))
	}
	return nil
}

// chunkAAD is the additional data authenticated with every chunk. Binding
// the file id stops chunks moving between files, the index stops reordering,
// dropping and duplication, and the last flag stops truncation and
// extension at a chunk boundary. The label keeps these tags from ever
// verifying as anything else sealed under the same key.
type chunkAAD [len(chunkLabel) + fileIDSize + 8 + 1]byte

func newChunkAAD(fileID []byte) *chunkAAD {
	var a chunkAAD
	copy(a[:], chunkLabel)
	copy(a[len(chunkLabel):], fileID)
	return &a
}

func (a *chunkAAD) set(index uint64, last bool) []byte {
	binary.BigEndian.PutUint64(a[len(chunkLabel)+fileIDSize:], index)
	a[len(a)-1] = 0
	if last {
		a[len(a)-1] = 1
	}
	return a[:]
}

// Writer seals a plaintext stream into the chunk format. It holds at most
// one chunk in memory, whatever the size of the file. It is not safe for
// concurrent use.
type Writer struct {
	w       io.Writer
	aead    cipher.AEAD
	aad     *chunkAAD
	buf     []byte // nonce || plaintext (then ciphertext) || room for the tag
	n       int    // plaintext bytes buffered in buf[nonceSize:]
	index   uint64
	written int64
	started bool // header written
	closed  bool
	err     error // sticky: a failed write leaves a file that must not be finished
}

// NewWriter returns a Writer that seals to w under aead for the file with
// the given 16-byte id. The id must be the one later passed to NewReader.
// An unusable cipher or id makes every Write and Close fail, rather than
// panic in the middle of an upload.
func NewWriter(w io.Writer, aead cipher.AEAD, fileID []byte) *Writer {
	sw := &Writer{w: w, aead: aead}
	if sw.err = checkParams(aead, fileID); sw.err == nil {
		sw.aad = newChunkAAD(fileID)
		sw.buf = make([]byte, fullSealed)
	}
	return sw
}

// Written returns the number of plaintext bytes accepted so far, so that a
// caller can enforce a size limit while streaming.
func (sw *Writer) Written() int64 { return sw.written }

// Write buffers p and seals every chunk that fills. Chunks are sealed only
// when full, so the last flag can go on the chunk sealed by Close.
func (sw *Writer) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	if sw.closed {
		return 0, errors.New("files: write to a closed Writer")
	}
	total := 0
	for len(p) > 0 {
		c := copy(sw.buf[nonceSize+sw.n:nonceSize+ChunkSize], p)
		sw.n += c
		p = p[c:]
		total += c
		sw.written += int64(c)
		if sw.n == ChunkSize {
			if err := sw.seal(false); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// Close seals the buffered rest of the plaintext as the last chunk, empty if
// need be. It does not close the underlying writer: the caller still has to
// flush and sync it, and only then may the file count as stored.
func (sw *Writer) Close() error {
	if sw.err != nil {
		return sw.err
	}
	if sw.closed {
		return nil
	}
	sw.closed = true
	return sw.seal(true)
}

func (sw *Writer) seal(last bool) error {
	if !sw.started {
		if _, err := io.WriteString(sw.w, magic); err != nil {
			sw.err = err
			return err
		}
		sw.started = true
	}
	nonce := sw.buf[:nonceSize]
	rand.Read(nonce) // never fails (crypto/rand crashes the program instead)
	plain := sw.buf[nonceSize : nonceSize+sw.n]
	sealed := sw.aead.Seal(plain[:0], nonce, plain, sw.aad.set(sw.index, last))
	if _, err := sw.w.Write(sw.buf[:nonceSize+len(sealed)]); err != nil {
		sw.err = err
		return err
	}
	sw.index++
	sw.n = 0
	return nil
}

// Reader decrypts a sealed file on demand, one chunk at a time, and lets the
// caller seek anywhere in the plaintext; that is what lets http.ServeContent
// answer Range requests without decrypting the whole file. It is not safe
// for concurrent use.
type Reader struct {
	r        io.ReaderAt
	aead     cipher.AEAD
	aad      *chunkAAD
	size     int64  // plaintext size
	last     uint64 // index of the last chunk
	pos      int64  // plaintext offset of the next Read
	buf      []byte // one sealed chunk; after opening, its plaintext at buf[nonceSize:]
	cur      int64  // index of the chunk whose verified plaintext is in buf, or -1
	curLen   int    // plaintext length of chunk cur
	verified bool   // the last chunk has authenticated, so EOF is real
	err      error  // sticky: once a chunk fails, the file is not trusted again
}

// NewReader returns a Reader over the sealed file in r, which is sealedSize
// bytes long and holds plainSize plaintext bytes under the given file id.
// It checks the header and that the two sizes agree before anything is
// decrypted, so a truncated or extended file is refused at once with an
// error wrapping ErrCorrupt.
func NewReader(r io.ReaderAt, aead cipher.AEAD, fileID []byte, plainSize int64, sealedSize int64) (*Reader, error) {
	if err := checkParams(aead, fileID); err != nil {
		return nil, err
	}
	if want := SealedSize(plainSize); want < 0 || sealedSize != want {
		return nil, fmt.Errorf("%w: %d sealed bytes cannot hold %d plaintext bytes (expected %d)", ErrCorrupt, sealedSize, plainSize, want)
	}
	var head [headerSize]byte
	if n, err := r.ReadAt(head[:], 0); n < headerSize {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: header truncated", ErrCorrupt)
		}
		return nil, fmt.Errorf("files: read header: %w", err)
	}
	if string(head[:]) != magic {
		return nil, fmt.Errorf("%w: not a sealed file (bad header)", ErrCorrupt)
	}
	return &Reader{
		r: r, aead: aead, aad: newChunkAAD(fileID),
		size: plainSize, last: uint64(plainSize / ChunkSize),
		buf: make([]byte, fullSealed), cur: -1,
	}, nil
}

// Size returns the plaintext size, for callers that need a length (a
// Content-Length, a progress bar) without seeking.
func (rd *Reader) Size() int64 { return rd.size }

// Read returns plaintext from the current chunk, decrypting the next chunk
// when needed. Bytes are returned only after their chunk has authenticated,
// and io.EOF only after the last chunk has, so a file cut short at a chunk
// boundary is reported as corrupt rather than as a shorter file.
func (rd *Reader) Read(p []byte) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	if rd.pos >= rd.size {
		if !rd.verified {
			if err := rd.load(int64(rd.last)); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	index := rd.pos / ChunkSize
	if index != rd.cur {
		if err := rd.load(index); err != nil {
			return 0, err
		}
	}
	off := int(rd.pos - index*ChunkSize)
	n := copy(p, rd.buf[nonceSize+off:nonceSize+rd.curLen])
	rd.pos += int64(n)
	return n, nil
}

// load reads and opens chunk index into buf.
func (rd *Reader) load(index int64) error {
	rd.cur = -1
	last := uint64(index) == rd.last
	plainLen := ChunkSize
	if last {
		plainLen = int(rd.size % ChunkSize)
	}
	sealedLen := nonceSize + plainLen + tagSize
	off := int64(headerSize) + index*fullSealed
	n, err := rd.r.ReadAt(rd.buf[:sealedLen], off)
	if n < sealedLen {
		if err == nil || errors.Is(err, io.EOF) {
			rd.err = fmt.Errorf("%w: chunk %d is truncated", ErrCorrupt, index)
			return rd.err
		}
		// An I/O error is not proof of tampering; it is not made sticky,
		// so a retry after a transient failure can still succeed.
		return fmt.Errorf("files: read chunk %d: %w", index, err)
	}
	ct := rd.buf[nonceSize:sealedLen]
	if _, err := rd.aead.Open(ct[:0], rd.buf[:nonceSize], ct, rd.aad.set(uint64(index), last)); err != nil {
		rd.err = fmt.Errorf("%w: chunk %d does not authenticate (tampered, truncated, moved or wrong key)", ErrCorrupt, index)
		return rd.err
	}
	rd.cur, rd.curLen = index, plainLen
	if last {
		rd.verified = true
	}
	return nil
}

// Seek sets the plaintext offset of the next Read, as io.Seeker describes:
// any offset from 0 up, including at and past the end (where Read returns
// io.EOF). Nothing is decrypted until the next Read.
func (rd *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = rd.pos + offset
	case io.SeekEnd:
		abs = rd.size + offset
	default:
		return 0, errors.New("files: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("files: negative position")
	}
	rd.pos = abs
	return abs, nil
}
