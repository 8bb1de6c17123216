// Package uploads keeps the upload folder: it streams uploads into sealed
// files (never the whole file in memory, never plaintext on disk), scans them
// for malware when a scanner is configured, holds each user to an upload
// rate and a quota, makes thumbnails of raster images in the background,
// opens stored files for download, and runs the quota janitor that expires
// files when the folder outgrows its limit, the heaviest uploaders' oldest
// first. Text history is never touched.
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
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
)

// Image limits. An image claiming more than MaxPixels is refused: no
// camera makes one, a decompression bomb does. Up to ThumbPixels an image
// is decoded for a thumbnail; between the two it is kept without one.
// Decoding holds the bitmap, about 4 bytes a pixel, so the images being
// decoded at once hold DecodePixels between them at most (64 megapixels by
// default: one image at the limit, or several smaller ones). Thumbnails fit
// ThumbSide×ThumbSide.
const (
	MaxPixels   = 250_000_000
	ThumbPixels = 50_000_000
	ThumbSide   = 320
)

// Defaults of Options.
const (
	// DefaultDecodePixels bounds the pixels decoded at once for thumbnails.
	DefaultDecodePixels = 64_000_000
	// DefaultMinAge is how young a file may be and still be safe from the
	// janitor while older files remain: a day, so that whatever was shared
	// today is there when its chat is read tonight.
	DefaultMinAge = 24 * time.Hour
	// DefaultThumbWait: a typical thumbnail is made well within it.
	DefaultThumbWait = 5 * time.Second
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
	// UserFileUsage sums one user's files not expired.
	UserFileUsage(ctx context.Context, userID int64) (chat.FileUsage, error)
	// FileUsageByUploader sums the files not expired per uploader.
	FileUsageByUploader(ctx context.Context) (map[int64]chat.FileUsage, error)
	// OldestFilesOf returns up to limit of one uploader's files not expired
	// and created before a time, oldest first.
	OldestFilesOf(ctx context.Context, uploaderID int64, before time.Time, limit int) ([]chat.File, error)
	// ExpireFile marks a file expired; false when it was already.
	ExpireFile(ctx context.Context, id []byte, at time.Time) (bool, error)
	// PendingThumbnails returns up to limit files not expired whose
	// thumbnail is still to be made, oldest first.
	PendingThumbnails(ctx context.Context, limit int) ([]chat.File, error)
	// SetThumbnail records a file's thumbnail (or that none could be made);
	// false when the file expired meanwhile.
	SetThumbnail(ctx context.Context, f chat.File) (bool, error)
	// FilesByStorageNames returns the files, expired or not, stored under
	// the given names.
	FilesByStorageNames(ctx context.Context, names []string) ([]chat.File, error)
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
	// MaxFileBytes limits one file; MaxTotalBytes all files together;
	// UserQuotaBytes the files of one user that are not expired (0: only
	// MaxTotalBytes). Thumbnails count towards the totals.
	MaxFileBytes   int64
	MaxTotalBytes  int64
	UserQuotaBytes int64
	// UploadsPerMinute and UploadBurst limit how many uploads one user may
	// start: a token bucket refilled at UploadsPerMinute, holding
	// UploadBurst (0: no limit).
	UploadsPerMinute float64
	UploadBurst      int
	// SharedLimits, when set, keeps each user's upload rate in Redis, one
	// budget across the nodes (see ratelimit.Shared).
	SharedLimits *ratelimit.Shared
	// MinAge: the janitor expires no file younger than this while older
	// ones remain (default DefaultMinAge).
	MinAge time.Duration
	// DecodePixels bounds the pixels decoded at once for thumbnails, across
	// all uploads (default DefaultDecodePixels).
	DecodePixels int64
	// ThumbWorkers is how many thumbnails may be made at once (default
	// GOMAXPROCS); DecodePixels may hold them back further.
	ThumbWorkers int
	// ThumbWait is how long a request for a thumbnail still being made
	// waits for it before it is told to try again (default
	// DefaultThumbWait).
	ThumbWait time.Duration
	// Scanner, when set, scans every upload before it is accepted.
	Scanner *files.Scanner
	// CreateTemp opens the file an upload streams into (default
	// os.CreateTemp); tests replace it to write to a full disk.
	CreateTemp func(dir, pattern string) (*os.File, error)
	// Metrics count uploads and the janitor's runs.
	Metrics Metrics
	// Shared says several nodes use Dir (a shared volume): at start, a
	// leftover is removed only once it is older than an hour, as another
	// node may be writing it now.
	Shared bool
	// Lock, when set, lets one node at a time run the quota janitor: it
	// takes the named lock for at most ttl and reports whether it got it.
	Lock func(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool)
}

// Service stores and serves uploads.
type Service struct {
	opt Options
	log *slog.Logger
	// rate holds each user's upload bucket; nil when uploads are not
	// rate-limited.
	rate *ratelimit.Keyed
	// janitor serialises quota work, so two uploads making room, or an
	// upload and the periodic run, do not expire more than needed, and two
	// uploads of one user cannot both slip under the user's quota.
	janitor sync.Mutex
	// budget bounds the pixels decoded at once for thumbnails.
	budget *pixelBudget
	// thumbs is the state of the background thumbnail worker.
	thumbs *thumbState
	// decodeHook, set by tests, is called as a thumbnail's decoding starts
	// with the pixels it holds; the function it returns, as it ends.
	decodeHook func(pixels int64) (done func())
}

// New returns a Service and makes its folders (mode 0700).
func New(o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CreateTemp == nil {
		o.CreateTemp = os.CreateTemp
	}
	if o.MinAge == 0 {
		o.MinAge = DefaultMinAge
	}
	if o.DecodePixels <= 0 {
		o.DecodePixels = DefaultDecodePixels
	}
	if o.ThumbWorkers <= 0 {
		o.ThumbWorkers = runtime.GOMAXPROCS(0)
	}
	if o.ThumbWait <= 0 {
		o.ThumbWait = DefaultThumbWait
	}
	o.Metrics = o.Metrics.withDefaults()
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("upload folder: %w", err)
		}
	}
	s := &Service{opt: o, log: o.Log, budget: newPixelBudget(o.DecodePixels), thumbs: newThumbState()}
	if o.UploadsPerMinute > 0 {
		s.rate = ratelimit.NewKeyed(o.UploadsPerMinute/60, max(1, o.UploadBurst))
		if o.SharedLimits != nil {
			s.rate.Share(o.SharedLimits, "uploads")
		}
	}
	return s, nil
}

// MaxFileBytes is the per-file limit.
func (s *Service) MaxFileBytes() int64 { return s.opt.MaxFileBytes }

// path is where a stored file lives: two levels keep folders small.
func (s *Service) path(storage string) string {
	return filepath.Join(s.opt.Dir, storage[:2], storage)
}

// thumbSuffix ends the name of a file's thumbnail, stored beside it.
const thumbSuffix = "-t"

// Admit takes one upload from the user's upload rate before its body is
// read. Over the rate it returns ETooMany with RetryAfter, and the upload
// should be refused without reading it.
func (s *Service) Admit(userID int64) error {
	if s.rate == nil {
		return nil
	}
	ok, wait := s.rate.Allow(userID, s.opt.Now())
	if ok {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	return &chat.Error{Code: chat.ETooMany, RetryAfter: wait, Message: fmt.Sprintf(
		"Too many uploads: each user may start %g a minute. Try again in %d s.", s.opt.UploadsPerMinute, secs)}
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

// The name and type every file of an end-to-end encrypted chat is stored
// and served under.
const (
	OpaqueName = "file.bin"
	OpaqueType = "application/octet-stream"
)

// Upload is a file on its way in.
type Upload struct {
	Chat         chat.Chat // resolved, membership checked
	UploaderID   int64
	Name         string // as the client sent it
	DeclaredType string // the client's Content-Type, a hint only
	Body         io.Reader
}

// Save streams an upload into a sealed file and records it. Nothing is left
// behind when it fails: no partial file, no row. A raster image's thumbnail
// is made afterwards, in the background (the file comes back with
// ThumbPending set); the image's size is checked before Save returns, so a
// decompression bomb is refused at once.
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
	// A file of an end-to-end encrypted chat was encrypted in the browser
	// (E2EE.md "Files"): it is opaque here. Its name and type travel inside
	// the encrypted message; a scanner or a thumbnail would see only
	// ciphertext, so neither runs.
	opaque := up.Chat.E2EE
	if opaque {
		f.Name = OpaqueName
	}

	// The user's quota is checked as the bytes arrive, against what they
	// stored before this upload began, so that an upload over it stops
	// there rather than at its end; it is checked again, exactly, before
	// the row is written.
	var used int64
	if s.opt.UserQuotaBytes > 0 {
		u, err := s.opt.Store.UserFileUsage(ctx, up.UploaderID)
		if err != nil {
			return chat.File{}, err
		}
		used = u.Bytes
		if used >= s.opt.UserQuotaBytes {
			return chat.File{}, s.overQuota(used)
		}
	}

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
	if s.opt.Scanner != nil && !opaque {
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
	if opaque {
		f.MimeType = OpaqueType
	}
	hash := sha256.New()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	sealed := files.NewWriter(bw, aead, f.ID)
	buf := make([]byte, 64<<10)
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			size := sealed.Written() + int64(n)
			if size > s.opt.MaxFileBytes {
				return chat.File{}, s.tooLarge()
			}
			if s.opt.UserQuotaBytes > 0 && used+size > s.opt.UserQuotaBytes {
				return chat.File{}, s.overQuota(used)
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
			s.log.WarnContext(ctx, "upload refused: malware", "signature", verdict.Signature, "user_id", up.UploaderID, "chat_id", up.Chat.ID)
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
		if err := s.inspectImage(&f); err != nil {
			s.removeStored(f)
			return chat.File{}, err
		}
	}
	if err := s.record(ctx, &f); err != nil {
		s.removeStored(f)
		return chat.File{}, err
	}
	s.log.InfoContext(ctx, "file stored", "file_id", hex.EncodeToString(f.ID), "chat_id", f.ChatID, "user_id", f.UploaderID, "bytes", f.Size, "mime_type", f.MimeType)
	s.opt.Metrics.Uploads.Inc()
	s.opt.Metrics.UploadBytes.Add(float64(f.Size))
	if f.ThumbPending {
		s.wakeThumbnails()
	}
	return f, nil
}

// record checks the uploader's quota, makes room under the total one and
// inserts the file's row, all under the janitor's lock: two uploads of one
// user finishing together are counted one after the other.
func (s *Service) record(ctx context.Context, f *chat.File) error {
	s.janitor.Lock()
	defer s.janitor.Unlock()
	if s.opt.UserQuotaBytes > 0 {
		u, err := s.opt.Store.UserFileUsage(ctx, f.UploaderID)
		if err != nil {
			return err
		}
		if u.Bytes+f.Size > s.opt.UserQuotaBytes {
			return s.overQuota(u.Bytes)
		}
	}
	if err := s.makeRoomLocked(ctx, f.Size); err != nil {
		return err
	}
	f.CreatedAt = s.opt.Now().UTC()
	return s.opt.Store.InsertFile(context.WithoutCancel(ctx), *f)
}

func (s *Service) tooLarge() error {
	return chat.Errorf(chat.ETooLarge, "The file is larger than the limit of %s.", HumanBytes(s.opt.MaxFileBytes))
}

// overQuota is the answer to an upload that would take its uploader's
// files past their quota.
func (s *Service) overQuota(used int64) error {
	return chat.Errorf(chat.ETooLarge, "The file would take your uploads past your quota of %s (your files not yet expired take %s). "+
		"The server expires files as its storage fills; until then, send a smaller file.",
		HumanBytes(s.opt.UserQuotaBytes), HumanBytes(used))
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
	var ce *chat.Error
	if errors.As(err, &ce) {
		return err // the body's reader said why (an upload that stalled)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return chat.Errorf(chat.ETooLarge, "The upload is larger than the server accepts.")
	}
	return chat.Errorf(chat.EInvalid, "The upload was cut off before it ended.")
}

// inspectImage reads a stored raster image's header. An image with more
// pixels than MaxPixels is refused outright; one whose header does not
// decode is kept as a plain file and never served inline; one small enough
// to decode is marked for a thumbnail, made in the background.
func (s *Service) inspectImage(f *chat.File) error {
	r, closeFile, err := s.open(*f, false)
	if err != nil {
		return err
	}
	defer closeFile()
	w, h, err := files.ImageSize(r)
	if err != nil {
		s.log.Info("image does not decode; stored as a plain file", "file_id", hex.EncodeToString(f.ID), "err", err)
		f.MimeType = "application/octet-stream"
		return nil
	}
	pixels := int64(w) * int64(h)
	if pixels > MaxPixels {
		return chat.Errorf(chat.EInvalid, "The image claims to be %d×%d pixels; images over %d megapixels are refused.", w, h, MaxPixels/1_000_000)
	}
	f.Width, f.Height = w, h
	// A very large photo is kept without a thumbnail.
	f.ThumbPending = pixels <= ThumbPixels
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

// removeStored removes a file's sealed content and thumbnail from disk. The
// thumbnail's name is known whether or not the row has it yet, so one the
// background worker is writing right now goes too (the worker removes it
// in turn if the row has expired by the time it records it).
func (s *Service) removeStored(f chat.File) {
	os.Remove(s.path(f.StorageName))
	os.Remove(s.path(f.StorageName + thumbSuffix))
	if f.ThumbName != "" && f.ThumbName != f.StorageName+thumbSuffix {
		os.Remove(s.path(f.ThumbName))
	}
}

// ErrExpired is returned by Download for a file the janitor expired, or an
// administrator removed with its uploader's account.
var ErrExpired = chat.Errorf(chat.ENotFound, "This file has expired: the server no longer keeps it (to stay within its storage quota, or because an administrator removed it).")

// ErrThumbnailPending is returned by Download for a thumbnail that is still
// being made after ThumbWait: the upload answers before it is ready.
// Clients try again after RetryAfter.
var ErrThumbnailPending = &chat.Error{Code: chat.ENotFound, RetryAfter: time.Second,
	Message: "The thumbnail is still being made; try again in a moment."}

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
	f, err := s.readable(ctx, id, ref)
	if err != nil {
		return Download{}, err
	}
	if thumb && f.ThumbPending {
		if f, err = s.awaitThumbnail(ctx, f); err != nil {
			return Download{}, err
		}
		if !f.ExpiredAt.IsZero() {
			return Download{}, ErrExpired
		}
	}
	if thumb && f.ThumbName == "" {
		if f.ThumbPending {
			return Download{}, ErrThumbnailPending
		}
		return Download{}, chat.Errorf(chat.ENotFound, "This file has no thumbnail.")
	}
	content, closeFile, err := s.open(f, thumb)
	if err != nil {
		return Download{}, err
	}
	return Download{File: f, Content: content, Close: closeFile}, nil
}

// readable looks up a file for a user who wants to read it: a member of
// its chat, while the file is kept (see Download's errors).
func (s *Service) readable(ctx context.Context, id chat.Identity, ref string) (chat.File, error) {
	fileID, err := hex.DecodeString(ref)
	if err != nil || len(fileID) != 16 {
		return chat.File{}, ErrNoSuchFile
	}
	f, err := s.opt.Store.FileByID(ctx, fileID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return chat.File{}, ErrNoSuchFile
	}
	if err != nil {
		return chat.File{}, err
	}
	member, err := s.opt.Store.IsMember(ctx, f.ChatID, id.UserID)
	if err != nil {
		return chat.File{}, err
	}
	if !member {
		return chat.File{}, ErrNoSuchFile
	}
	if !f.ExpiredAt.IsZero() {
		return chat.File{}, ErrExpired
	}
	return f, nil
}

// ErrNotMedia answers a request for a media URL of a file that is not
// audio or video.
var ErrNotMedia = chat.Errorf(chat.EInvalid, "Only audio and video files play from a media link; download this file instead.")

// Media looks up an audio or video file for a member of its chat who wants
// to play it from a media URL: Download's checks, and the stored type must
// be audio or video (Ogg included). Others are ErrNotMedia.
func (s *Service) Media(ctx context.Context, id chat.Identity, ref string) (chat.File, error) {
	f, err := s.readable(ctx, id, ref)
	if err != nil {
		return chat.File{}, err
	}
	if !files.IsMedia(f.MimeType) {
		return chat.File{}, ErrNotMedia
	}
	return f, nil
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

// RemoveFiles expires the given files and removes their sealed content and
// thumbnails from disk (an account deleted with its files): their messages
// stay and show the file as expired. It returns how many files it removed
// and how many bytes that freed.
func (s *Service) RemoveFiles(ctx context.Context, files []chat.File) (removed int, freed int64, err error) {
	for _, f := range files {
		ok, err := s.opt.Store.ExpireFile(ctx, f.ID, s.opt.Now().UTC())
		if err != nil {
			return removed, freed, err
		}
		if !ok {
			continue // the janitor expired it meanwhile
		}
		// The row says expired before the file goes, as for the janitor.
		s.removeStored(f)
		removed++
		freed += f.Size + f.ThumbSize
	}
	return removed, freed, nil
}
