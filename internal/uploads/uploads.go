// Package uploads keeps the upload folder: it streams uploads into sealed
// files (never the whole file in memory, never plaintext on disk), scans them
// for malware when a scanner is configured, makes thumbnails of raster
// images, opens stored files for download, and runs the quota janitor that
// expires the oldest files when the folder outgrows its limit. Text history
// is never touched.
package uploads

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/keyring"
)

// Image limits. An image claiming more than MaxPixels is refused: no
// camera makes one, a decompression bomb does. Up to ThumbPixels an image
// is decoded for a thumbnail (decoding holds the bitmap, about 4 bytes a
// pixel, so one runs at a time); between the two it is kept without one.
// Thumbnails fit ThumbSide×ThumbSide.
const (
	MaxPixels   = 250_000_000
	ThumbPixels = 50_000_000
	ThumbSide   = 320
)

// Store is what the upload folder needs of the database.
type Store interface {
	// InsertFile stores a file's row.
	InsertFile(ctx context.Context, f chat.File) error
	// FileByID finds a file; ENotFound when there is none.
	FileByID(ctx context.Context, id []byte) (chat.File, error)
	// IsMember reports whether the user belongs to the chat.
	IsMember(ctx context.Context, chatID, userID int64) (bool, error)
	// FileUsage sums the files not expired.
	FileUsage(ctx context.Context) (chat.FileUsage, error)
	// OldestFiles returns up to limit files not expired, oldest first.
	OldestFiles(ctx context.Context, limit int) ([]chat.File, error)
	// ExpireFile marks a file expired; false when it was already.
	ExpireFile(ctx context.Context, id []byte, at time.Time) (bool, error)
}

// Options configure a Service.
type Options struct {
	Store Store
	Ring  *keyring.Ring
	Log   *slog.Logger
	Now   func() time.Time
	// Dir is the upload folder. Sealed files live in Dir/xx/<name>, uploads
	// in progress in Dir/tmp.
	Dir string
	// MaxFileBytes limits one file; MaxTotalBytes all files together.
	MaxFileBytes  int64
	MaxTotalBytes int64
	// Scanner, when set, scans every upload before it is accepted.
	Scanner *files.Scanner
	// CreateTemp opens the file an upload streams into (default
	// os.CreateTemp); tests replace it to write to a full disk.
	CreateTemp func(dir, pattern string) (*os.File, error)
}

// Service stores and serves uploads.
type Service struct {
	opt Options
	log *slog.Logger
	// janitor serialises quota work, so two uploads making room, or an
	// upload and the periodic run, do not expire more than needed.
	janitor sync.Mutex
	// thumbs bounds how many images are decoded at once: decoding holds the
	// whole bitmap in memory.
	thumbs chan struct{}
}

// New returns a Service and makes its folders (mode 0700).
func New(o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CreateTemp == nil {
		o.CreateTemp = os.CreateTemp
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("upload folder: %w", err)
		}
	}
	return &Service{opt: o, log: o.Log, thumbs: make(chan struct{}, 1)}, nil
}

// MaxFileBytes is the per-file limit.
func (s *Service) MaxFileBytes() int64 { return s.opt.MaxFileBytes }

// path is where a stored file lives: two levels keep folders small.
func (s *Service) path(storage string) string {
	return filepath.Join(s.opt.Dir, storage[:2], storage)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// thumbID is the id a file's thumbnail is sealed under, so that a thumbnail
// and its file cannot stand in for each other.
func thumbID(fileID []byte) []byte {
	sum := sha256.Sum256(append([]byte("mapsim-chat/v1/thumbnail\x00"), fileID...))
	return sum[:16]
}

var errDiskFull = chat.Errorf(chat.EUnavailable, "The server's disk is full; the file was not stored.")

// storageError turns a write failure into what the client is told.
func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return errDiskFull
	}
	return fmt.Errorf("store upload: %w", err)
}

// Upload is a file on its way in.
type Upload struct {
	Chat         chat.Chat // resolved, membership checked
	UploaderID   int64
	Name         string // as the client sent it
	DeclaredType string // the client's Content-Type, a hint only
	Body         io.Reader
}

// Save streams an upload into a sealed file and records it. Nothing is left
// behind when it fails: no partial file, no row.
func (s *Service) Save(ctx context.Context, up Upload) (chat.File, error) {
	version := s.opt.Ring.Current()
	aead, ok := s.opt.Ring.AEAD(version)
	if !ok {
		return chat.File{}, fmt.Errorf("key version %d missing from the ring", version)
	}
	f := chat.File{
		ID: make([]byte, 16), ChatID: up.Chat.ID, UploaderID: up.UploaderID,
		Name: files.CleanName(up.Name), KeyVersion: version, StorageName: randomHex(16),
	}
	rand.Read(f.ID)

	tmp, err := s.opt.CreateTemp(filepath.Join(s.opt.Dir, "tmp"), "upload-*.part")
	if err != nil {
		return chat.File{}, storageError(err)
	}
	tmpName := tmp.Name()
	kept := false
	defer func() {
		if !kept {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	var scan *files.Scan
	if s.opt.Scanner != nil {
		if scan, err = s.opt.Scanner.Start(ctx); err != nil {
			return chat.File{}, s.scannerDown(err)
		}
		defer scan.Abort()
	}

	// Sniff the type from the first bytes, then stream: hash, scan and seal
	// each piece as it arrives. One piece of memory per upload, whatever its
	// size.
	in := bufio.NewReaderSize(up.Body, 64<<10)
	head, _ := in.Peek(512)
	f.MimeType = files.Sniff(head, up.DeclaredType)
	hash := sha256.New()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	sealed := files.NewWriter(bw, aead, f.ID)
	buf := make([]byte, 64<<10)
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if sealed.Written()+int64(n) > s.opt.MaxFileBytes {
				return chat.File{}, s.tooLarge()
			}
			hash.Write(buf[:n])
			if scan != nil {
				if err := scan.Write(buf[:n]); err != nil {
					return chat.File{}, s.scanFailed(err)
				}
			}
			if _, err := sealed.Write(buf[:n]); err != nil {
				return chat.File{}, storageError(err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return chat.File{}, readError(rerr)
		}
	}
	f.Size = sealed.Written()
	if f.Size == 0 {
		return chat.File{}, chat.Errorf(chat.EInvalid, "The file is empty.")
	}
	f.SHA256 = hash.Sum(nil)
	if scan != nil {
		verdict, err := scan.Finish()
		if err != nil {
			return chat.File{}, s.scanFailed(err)
		}
		if verdict.Infected {
			s.log.Warn("upload refused: malware", "signature", verdict.Signature, "user_id", up.UploaderID, "chat_id", up.Chat.ID)
			return chat.File{}, chat.Errorf(chat.EInvalid, "The file was refused: the malware scanner found %s in it.", verdict.Signature)
		}
	}
	if err := sealed.Close(); err != nil {
		return chat.File{}, storageError(err)
	}
	if err := bw.Flush(); err != nil {
		return chat.File{}, storageError(err)
	}
	if err := tmp.Sync(); err != nil {
		return chat.File{}, storageError(err)
	}
	if err := tmp.Close(); err != nil {
		return chat.File{}, storageError(err)
	}

	final := s.path(f.StorageName)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return chat.File{}, storageError(err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return chat.File{}, storageError(err)
	}
	kept = true

	if files.IsRaster(f.MimeType) {
		if err := s.thumbnail(ctx, &f); err != nil {
			s.removeStored(f)
			return chat.File{}, err
		}
	}
	if err := s.makeRoom(ctx, f.Size+f.ThumbSize); err != nil {
		s.removeStored(f)
		return chat.File{}, err
	}
	f.CreatedAt = s.opt.Now().UTC()
	if err := s.opt.Store.InsertFile(context.WithoutCancel(ctx), f); err != nil {
		s.removeStored(f)
		return chat.File{}, err
	}
	s.log.Info("file stored", "file_id", hex.EncodeToString(f.ID), "chat_id", f.ChatID, "user_id", f.UploaderID, "bytes", f.Size, "mime_type", f.MimeType)
	return f, nil
}

func (s *Service) tooLarge() error {
	return chat.Errorf(chat.ETooLarge, "The file is larger than the limit of %s.", HumanBytes(s.opt.MaxFileBytes))
}

func (s *Service) scannerDown(err error) error {
	s.log.Error("malware scanner unreachable; upload refused", "err", err)
	return chat.Errorf(chat.EUnavailable, "The malware scanner is not reachable, so the file was not stored. Try again later.")
}

func (s *Service) scanFailed(err error) error {
	if errors.Is(err, files.ErrScanLimit) {
		return chat.Errorf(chat.ETooLarge, "The file is larger than the malware scanner accepts.")
	}
	return s.scannerDown(err)
}

// readError tells apart a body that was too large for the server's request
// limit from a client that went away.
func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return chat.Errorf(chat.ETooLarge, "The upload is larger than the server accepts.")
	}
	return chat.Errorf(chat.EInvalid, "The upload was cut off before it ended.")
}

// thumbnail seals a small preview of a raster image beside it. An image
// with more pixels than MaxPixels is refused outright; one that does not
// decode is kept as a plain file and never served inline.
func (s *Service) thumbnail(ctx context.Context, f *chat.File) error {
	select {
	case s.thumbs <- struct{}{}:
		defer func() { <-s.thumbs }()
	case <-ctx.Done():
		return ctx.Err()
	}
	r, closeFile, err := s.open(*f, false)
	if err != nil {
		return err
	}
	defer closeFile()
	th, err := files.Thumbnail(r, ThumbPixels, ThumbSide)
	var pe *files.PixelError
	if errors.As(err, &pe) {
		if int64(pe.Width)*int64(pe.Height) > MaxPixels {
			return chat.Errorf(chat.EInvalid, "The image claims to be %d×%d pixels; images over %d megapixels are refused.", pe.Width, pe.Height, MaxPixels/1_000_000)
		}
		f.Width, f.Height = pe.Width, pe.Height
		return nil // a very large photo: kept, without a thumbnail
	}
	if err != nil {
		s.log.Info("image does not decode; stored as a plain file", "file_id", hex.EncodeToString(f.ID), "err", err)
		f.MimeType = "application/octet-stream"
		return nil
	}
	f.Width, f.Height = th.SourceWidth, th.SourceHeight
	aead, _ := s.opt.Ring.AEAD(f.KeyVersion)
	name := f.StorageName + "-t"
	out, err := os.OpenFile(s.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return storageError(err)
	}
	w := files.NewWriter(out, aead, thumbID(f.ID))
	if _, err := w.Write(th.Data); err != nil {
		out.Close()
		os.Remove(out.Name())
		return storageError(err)
	}
	if err := w.Close(); err != nil {
		out.Close()
		os.Remove(out.Name())
		return storageError(err)
	}
	if err := out.Close(); err != nil {
		os.Remove(out.Name())
		return storageError(err)
	}
	f.ThumbName, f.ThumbSize, f.ThumbMimeType = name, int64(len(th.Data)), th.MimeType
	return nil
}

// Discard removes a file that was saved for a request that then failed:
// its row is marked expired and its sealed files removed.
func (s *Service) Discard(ctx context.Context, f chat.File) {
	if _, err := s.opt.Store.ExpireFile(context.WithoutCancel(ctx), f.ID, s.opt.Now().UTC()); err != nil {
		s.log.Error("discard upload", "err", err)
	}
	s.removeStored(f)
}

// removeStored removes a file's sealed content and thumbnail from disk.
func (s *Service) removeStored(f chat.File) {
	os.Remove(s.path(f.StorageName))
	if f.ThumbName != "" {
		os.Remove(s.path(f.ThumbName))
	}
}

// ErrExpired is returned by Download for a file the janitor expired.
var ErrExpired = chat.Errorf(chat.ENotFound, "This file has expired: the server removed it to stay within its storage quota.")

// ErrDamaged is returned when a stored file fails its integrity check.
var ErrDamaged = errors.New("stored file is damaged")

// ErrNoSuchFile is the answer for a file that does not exist and for a file
// of a chat the asker is not in, alike, so a non-member learns nothing
// about it.
var ErrNoSuchFile = chat.Errorf(chat.ENotFound, "No such file.")

// Download is a stored file opened for one reader.
type Download struct {
	File    chat.File
	Content io.ReadSeeker // the plaintext, checked chunk by chunk as it is read
	Close   func() error
}

// Download opens a stored file, or its thumbnail, for a user: only a member
// of the file's chat may read it. ref is the file's id as clients write it
// (32 hex digits). A file that is missing, named wrongly or in another
// user's chat is ErrNoSuchFile; one the janitor expired ErrExpired; one that
// fails its integrity check ErrDamaged.
func (s *Service) Download(ctx context.Context, id chat.Identity, ref string, thumb bool) (Download, error) {
	fileID, err := hex.DecodeString(ref)
	if err != nil || len(fileID) != 16 {
		return Download{}, ErrNoSuchFile
	}
	f, err := s.opt.Store.FileByID(ctx, fileID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return Download{}, ErrNoSuchFile
	}
	if err != nil {
		return Download{}, err
	}
	member, err := s.opt.Store.IsMember(ctx, f.ChatID, id.UserID)
	if err != nil {
		return Download{}, err
	}
	if !member {
		return Download{}, ErrNoSuchFile
	}
	if !f.ExpiredAt.IsZero() {
		return Download{}, ErrExpired
	}
	if thumb && f.ThumbName == "" {
		return Download{}, chat.Errorf(chat.ENotFound, "This file has no thumbnail.")
	}
	content, closeFile, err := s.open(f, thumb)
	if err != nil {
		return Download{}, err
	}
	return Download{File: f, Content: content, Close: closeFile}, nil
}

// open returns the plaintext of a stored file (or its thumbnail) as a
// ReadSeeker that checks every chunk as it reads; close it when done. It
// does not check who asks: Download does.
func (s *Service) open(f chat.File, thumb bool) (io.ReadSeeker, func() error, error) {
	name, id, size := f.StorageName, f.ID, f.Size
	if thumb {
		name, id, size = f.ThumbName, thumbID(f.ID), f.ThumbSize
	}
	aead, ok := s.opt.Ring.AEAD(f.KeyVersion)
	if !ok {
		return nil, nil, fmt.Errorf("%w: key version %d is not in the ring", ErrDamaged, f.KeyVersion)
	}
	file, err := os.Open(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s is missing", ErrDamaged, name)
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	r, err := files.NewReader(file, aead, id, size, st.Size())
	if err != nil {
		file.Close()
		return nil, nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return r, file.Close, nil
}

// makeRoom expires the oldest files until incoming more bytes fit under 90 %
// of the quota, when they would not fit under the quota as it is.
func (s *Service) makeRoom(ctx context.Context, incoming int64) error {
	s.janitor.Lock()
	defer s.janitor.Unlock()
	u, err := s.opt.Store.FileUsage(ctx)
	if err != nil {
		return err
	}
	if u.Bytes+incoming <= s.opt.MaxTotalBytes {
		return nil
	}
	_, _, err = s.expireLocked(ctx, u.Bytes, s.opt.MaxTotalBytes*9/10-incoming, "an upload needed room")
	return err
}

// Prune runs the janitor once: over the quota, it expires the oldest files
// until usage is under 90 % of it. It also removes uploads abandoned in the
// temporary folder for more than an hour.
func (s *Service) Prune(ctx context.Context) (expired int, freed int64, err error) {
	s.removeStaleTemp()
	s.janitor.Lock()
	defer s.janitor.Unlock()
	u, err := s.opt.Store.FileUsage(ctx)
	if err != nil {
		return 0, 0, err
	}
	if u.Bytes <= s.opt.MaxTotalBytes {
		return 0, 0, nil
	}
	return s.expireLocked(ctx, u.Bytes, s.opt.MaxTotalBytes*9/10, "over the quota")
}

// expireLocked expires files oldest first until usage is at most target.
// Their rows stay (messages show "file expired"); the sealed files go.
func (s *Service) expireLocked(ctx context.Context, usage, target int64, why string) (expired int, freed int64, err error) {
	defer func() {
		if expired > 0 {
			s.log.Info("quota janitor expired files", "reason", why, "files", expired, "freed_bytes", freed,
				"usage_bytes", usage-freed, "quota_bytes", s.opt.MaxTotalBytes)
		}
	}()
	for usage-freed > target {
		batch, err := s.opt.Store.OldestFiles(ctx, 100)
		if err != nil {
			return expired, freed, err
		}
		if len(batch) == 0 {
			break
		}
		for _, f := range batch {
			if usage-freed <= target {
				break
			}
			ok, err := s.opt.Store.ExpireFile(ctx, f.ID, s.opt.Now().UTC())
			if err != nil {
				return expired, freed, err
			}
			if !ok {
				continue
			}
			// The row says expired before the file goes, so a download
			// between the two gets "expired", not "damaged".
			s.removeStored(f)
			expired++
			freed += f.Size + f.ThumbSize
		}
	}
	return expired, freed, nil
}

// staleTemp is how old an unfinished upload must be before the janitor
// removes it.
const staleTemp = time.Hour

func (s *Service) removeStaleTemp() {
	dir := filepath.Join(s.opt.Dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := s.opt.Now().Add(-staleTemp)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Run prunes every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("quota janitor", "err", err)
			}
		}
	}
}

// ClearFolder removes every stored file and unfinished upload, for the
// admin reset. It returns how many files it removed.
func (s *Service) ClearFolder() (int, error) {
	removed := 0
	entries, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !e.IsDir() || (len(e.Name()) != 2 && e.Name() != "tmp") {
			continue // not ours: leave it
		}
		sub := filepath.Join(s.opt.Dir, e.Name())
		inner, err := os.ReadDir(sub)
		if err != nil {
			return removed, err
		}
		for _, f := range inner {
			if err := os.Remove(filepath.Join(sub, f.Name())); err != nil {
				return removed, err
			}
			removed++
		}
		if e.Name() != "tmp" {
			os.Remove(sub)
		}
	}
	return removed, nil
}

// HumanBytes writes a byte count for people: "1 MB", "3.5 GB".
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.4g GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
