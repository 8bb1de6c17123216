package e2ee

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
)

// File encryption. A file is encrypted in chunks of FileChunkSize bytes,
// each sealed on its own, so that neither side holds more than a chunk:
//
//	chunk i = AEAD(file_key, iv = nonce_prefix || u32(i), plaintext_i,
//	               aad = T("mapsim-e2ee/v1/file-chunk", u32(i), last ? "1" : "0"))
//
// and the ciphertext is the chunks one after another. Every chunk but the
// last holds exactly FileChunkSize bytes of plaintext; the last holds the
// rest, 1 to FileChunkSize bytes, and is empty only when the whole file is:
// a file of n bytes has max(1, ceil(n / FileChunkSize)) chunks. The index in
// the IV and the additional data refuses reordering; the last-chunk flag
// refuses truncation at a chunk boundary and anything appended.

// FileChunkSize is the number of plaintext bytes in every chunk but the
// last: 64 KiB.
const FileChunkSize = 64 << 10

// NoncePrefixSize is the size of a file's nonce prefix.
const NoncePrefixSize = 8

// sealedChunkSize is the size of a full chunk's ciphertext.
const sealedChunkSize = FileChunkSize + TagSize

// maxChunks is the most chunks a file may have: chunk indices are u32.
const maxChunks = math.MaxUint32 + 1

// EncryptedFileSize returns the size of the ciphertext of a file of plain
// bytes, or -1 for a negative size or a file too large for the format. A
// receiver can check a download's size against the size its message
// states before reading it.
func EncryptedFileSize(plain int64) int64 {
	if plain < 0 || plain > maxChunks*FileChunkSize {
		return -1
	}
	chunks := max(1, (plain+FileChunkSize-1)/FileChunkSize)
	return plain + chunks*TagSize
}

// NewFileKey returns a fresh file key and nonce prefix. Each file,
// thumbnails included, gets its own.
func NewFileKey() (key [KeySize]byte, noncePrefix [NoncePrefixSize]byte) {
	rand.Read(key[:])
	rand.Read(noncePrefix[:])
	return key, noncePrefix
}

// fileChunkAAD is T("mapsim-e2ee/v1/file-chunk", u32(i), last ? "1" : "0").
func fileChunkAAD(i uint32, last bool) []byte {
	flag := []byte("0")
	if last {
		flag = []byte("1")
	}
	return Transcript(labelFileChunk, U32(i), flag)
}

// fileChunks holds what the writer and the reader share: the cipher and the
// IV of the next chunk.
type fileChunks struct {
	aead  cipher.AEAD
	iv    [IVSize]byte
	index uint64 // of the next chunk; up to maxChunks
}

func newFileChunks(key [KeySize]byte, noncePrefix [NoncePrefixSize]byte) fileChunks {
	c := fileChunks{aead: newGCM(key[:])}
	copy(c.iv[:], noncePrefix[:])
	return c
}

// nonce returns the IV of the next chunk.
func (c *fileChunks) nonce() []byte {
	binary.BigEndian.PutUint32(c.iv[NoncePrefixSize:], uint32(c.index))
	return c.iv[:]
}

// FileWriter encrypts a file into the writer it wraps. Close writes the
// last chunk: a file not closed is not a file.
type FileWriter struct {
	dst    io.Writer
	chunks fileChunks
	plain  []byte // the chunk being filled, held back until it is known whether it is the last
	sealed []byte
	sum    hash.Hash
	err    error // sticky
	closed bool
}

// NewFileWriter returns a FileWriter that writes the ciphertext of what is
// written to it into dst, under key and noncePrefix (NewFileKey).
func NewFileWriter(dst io.Writer, key [KeySize]byte, noncePrefix [NoncePrefixSize]byte) *FileWriter {
	return &FileWriter{
		dst: dst, chunks: newFileChunks(key, noncePrefix),
		plain: make([]byte, 0, FileChunkSize), sealed: make([]byte, 0, sealedChunkSize), sum: sha256.New(),
	}
}

// errWriterClosed is returned by a Write after Close.
var errWriterClosed = errors.New("e2ee: write to a closed file writer")

// Write encrypts p. A full chunk is written only when more data follows it,
// since only then is it known not to be the last.
func (w *FileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errWriterClosed
	}
	n := 0
	for len(p) > 0 {
		if len(w.plain) == FileChunkSize {
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		c := copy(w.plain[len(w.plain):FileChunkSize], p)
		w.plain = w.plain[:len(w.plain)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// Close writes the last chunk. It does not close the underlying writer.
func (w *FileWriter) Close() error {
	if w.err != nil || w.closed {
		return w.err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	w.closed = true
	return nil
}

func (w *FileWriter) flush(last bool) error {
	if w.chunks.index >= maxChunks {
		w.err = fmt.Errorf("e2ee: file of more than 2^32 chunks: %w", ErrTooLarge)
		return w.err
	}
	w.sealed = w.chunks.aead.Seal(w.sealed[:0], w.chunks.nonce(), w.plain, fileChunkAAD(uint32(w.chunks.index), last))
	if _, err := w.dst.Write(w.sealed); err != nil {
		w.err = fmt.Errorf("e2ee: write file chunk %d: %w", w.chunks.index, err)
		return w.err
	}
	w.sum.Write(w.sealed)
	w.chunks.index++
	w.plain = w.plain[:0]
	return nil
}

// CiphertextSHA256 returns the SHA-256 of the ciphertext written, the
// file's "sha256" in its message. It is complete only after Close.
func (w *FileWriter) CiphertextSHA256() [sha256.Size]byte {
	var s [sha256.Size]byte
	w.sum.Sum(s[:0])
	return s
}

// FileReader decrypts a file. It returns only plaintext whose chunk has
// been authenticated, and it refuses a file whose chunks were reordered,
// dropped or altered (ErrAltered), one that stops before its last chunk
// (ErrTruncated), one with anything after its last chunk (ErrAltered), and
// one whose ciphertext's SHA-256 is not the one its message states
// (ErrAltered, checked before the last chunk's plaintext and io.EOF are
// returned). Chunks before the last are returned as they are
// authenticated, so a caller that must not act on part of a file keeps
// what it read until Read returns io.EOF, and discards it on any error.
type FileReader struct {
	src    io.Reader
	chunks fileChunks
	want   [sha256.Size]byte
	sum    hash.Hash
	buf    []byte // a full chunk and one byte more, to learn whether another follows
	n      int    // bytes in buf
	plain  []byte
	out    []byte // plaintext not yet returned
	err    error  // sticky; io.EOF after the last chunk
}

// NewFileReader returns a FileReader that decrypts the ciphertext read from
// src under key and noncePrefix, expecting ciphertextSHA256 as the SHA-256
// of the whole ciphertext.
func NewFileReader(src io.Reader, key [KeySize]byte, noncePrefix [NoncePrefixSize]byte, ciphertextSHA256 [sha256.Size]byte) *FileReader {
	return &FileReader{
		src: src, chunks: newFileChunks(key, noncePrefix), want: ciphertextSHA256, sum: sha256.New(),
		buf: make([]byte, sealedChunkSize+1), plain: make([]byte, 0, FileChunkSize),
	}
}

// Read reads decrypted plaintext.
func (r *FileReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next reads and opens one chunk into r.out, returning io.EOF after the
// last.
func (r *FileReader) next() error {
	m, err := io.ReadFull(r.src, r.buf[r.n:])
	r.n += m
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("e2ee: read file chunk %d: %w", r.chunks.index, err)
	}
	if r.n < len(r.buf) {
		return r.last(r.buf[:r.n])
	}
	// A full chunk, and at least a byte after it: this chunk is not the
	// last.
	chunk := r.buf[:sealedChunkSize]
	if r.chunks.index+1 >= maxChunks {
		return fmt.Errorf("e2ee: file of more than 2^32 chunks: %w", ErrAltered)
	}
	r.sum.Write(chunk)
	plain, err := r.open(chunk, false)
	if err != nil {
		if _, err := r.open(chunk, true); err == nil {
			return fmt.Errorf("e2ee: data after the last chunk (%d): %w", r.chunks.index, ErrAltered)
		}
		return fmt.Errorf("e2ee: file chunk %d: %w", r.chunks.index, ErrAltered)
	}
	r.out = plain
	r.chunks.index++
	r.buf[0] = r.buf[sealedChunkSize]
	r.n = 1
	return nil
}

// last opens the final chunk, then checks the ciphertext's SHA-256 before
// it lets the chunk's plaintext out.
func (r *FileReader) last(chunk []byte) error {
	if len(chunk) < TagSize {
		return fmt.Errorf("e2ee: file ends inside chunk %d: %w", r.chunks.index, ErrTruncated)
	}
	r.sum.Write(chunk)
	plain, err := r.open(chunk, true)
	if err != nil {
		if _, err := r.open(chunk, false); err == nil {
			return fmt.Errorf("e2ee: file ends after chunk %d, which is not the last: %w", r.chunks.index, ErrTruncated)
		}
		return fmt.Errorf("e2ee: file chunk %d: %w", r.chunks.index, ErrAltered)
	}
	if len(plain) == 0 && r.chunks.index > 0 {
		// The format has no empty last chunk after full ones; only
		// another writer could make one, so refuse it rather than accept
		// two encodings of one file.
		return malformed("file ends with an empty chunk")
	}
	var got [sha256.Size]byte
	if r.sum.Sum(got[:0]); got != r.want {
		return fmt.Errorf("e2ee: the file's SHA-256 is not its message's: %w", ErrAltered)
	}
	r.out = plain
	return io.EOF
}

// open authenticates and decrypts chunk as the next chunk, the last or
// not. The plaintext shares r.plain, which holds nothing still unread
// when a chunk is opened.
func (r *FileReader) open(chunk []byte, last bool) ([]byte, error) {
	return r.chunks.aead.Open(r.plain[:0], r.chunks.nonce(), chunk, fileChunkAAD(uint32(r.chunks.index), last))
}
