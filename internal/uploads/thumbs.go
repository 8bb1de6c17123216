package uploads

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/files"
)

// Thumbnails are made off the request path: Save records a raster image
// with ThumbPending set and answers; the worker started by Run finds the
// pending rows, decodes each image within the pixel budget, seals the
// thumbnail beside the file and records it. The rows are the queue, so a
// thumbnail the server had no time for before it stopped is made after the
// next start, and a burst of uploads costs no memory while it waits.

// thumbBatch is how many pending rows the worker reads at a time.
const thumbBatch = 100

// thumbState is what the worker keeps between rounds.
type thumbState struct {
	// wake tells the worker to look for pending rows (an upload added one,
	// a thumbnail finished, the janitor's tick retries failures).
	wake chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool // file ids being made now
	failed   map[string]bool // file ids that failed; retried at the next tick
	// finished holds the file ids done since the worker last listed the
	// pending rows: a list read just before a thumbnail was recorded still
	// names its file, which must not be made twice.
	finished map[string]bool
	// changed is closed, and replaced, each time a thumbnail is recorded:
	// requests waiting for one look again.
	changed chan struct{}
	// waiting counts the requests waiting in awaitThumbnail.
	waiting int
}

func newThumbState() *thumbState {
	t := &thumbState{wake: make(chan struct{}, 1), inFlight: map[string]bool{}, failed: map[string]bool{},
		finished: map[string]bool{}, changed: make(chan struct{})}
	t.wake <- struct{}{} // the first round picks up what an earlier run left pending
	return t
}

// wakeThumbnails tells the worker there may be work; it never blocks.
func (s *Service) wakeThumbnails() {
	select {
	case s.thumbs.wake <- struct{}{}:
	default:
	}
}

// retryThumbnails lets the worker try the thumbnails that failed again.
func (s *Service) retryThumbnails() {
	s.thumbs.mu.Lock()
	clear(s.thumbs.failed)
	s.thumbs.mu.Unlock()
	s.wakeThumbnails()
}

// claim marks a file as being made, unless it is already or failed lately.
func (s *Service) claim(id []byte) bool {
	s.thumbs.mu.Lock()
	defer s.thumbs.mu.Unlock()
	k := string(id)
	if s.thumbs.inFlight[k] || s.thumbs.failed[k] || s.thumbs.finished[k] {
		return false
	}
	s.thumbs.inFlight[k] = true
	return true
}

// unclaim ends a file's turn, and tells the requests waiting for a
// thumbnail to look again.
func (s *Service) unclaim(id []byte, failed bool) {
	s.thumbs.mu.Lock()
	defer s.thumbs.mu.Unlock()
	delete(s.thumbs.inFlight, string(id))
	if failed {
		s.thumbs.failed[string(id)] = true
	} else {
		s.thumbs.finished[string(id)] = true
	}
	close(s.thumbs.changed)
	s.thumbs.changed = make(chan struct{})
}

func (s *Service) setWaiting(delta int) {
	s.thumbs.mu.Lock()
	s.thumbs.waiting += delta
	s.thumbs.mu.Unlock()
}

// awaitThumbnail waits up to ThumbWait for the thumbnail of f, which is
// pending, and returns the file as it is then: with its thumbnail, or
// still pending when the wait ran out or ctx ended. A client that asks as
// soon as the file message arrives, which is usually just before the
// worker is done, gets the preview instead of an error and a retry.
func (s *Service) awaitThumbnail(ctx context.Context, f chat.File) (chat.File, error) {
	timer := time.NewTimer(s.opt.ThumbWait)
	defer timer.Stop()
	for {
		// The channel is taken before the row is read, so a thumbnail
		// recorded in between still wakes this request.
		s.thumbs.mu.Lock()
		changed := s.thumbs.changed
		s.thumbs.mu.Unlock()
		cur, err := s.opt.Store.FileByID(ctx, f.ID)
		if err != nil {
			return f, err
		}
		f = cur
		if !f.ThumbPending || f.ThumbName != "" || !f.ExpiredAt.IsZero() {
			return f, nil
		}
		s.setWaiting(+1)
		select {
		case <-changed:
			s.setWaiting(-1)
		case <-timer.C:
			s.setWaiting(-1)
			return f, nil
		case <-ctx.Done():
			s.setWaiting(-1)
			return f, nil
		}
	}
}

// runThumbnails makes pending thumbnails, ThumbWorkers at a time at most,
// until ctx ends; then it waits for the ones being made.
func (s *Service) runThumbnails(ctx context.Context) {
	var workers sync.WaitGroup
	defer workers.Wait()
	slots := make(chan struct{}, s.opt.ThumbWorkers)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.thumbs.wake:
		}
		// What finished before this list is read is no longer pending in it.
		s.thumbs.mu.Lock()
		clear(s.thumbs.finished)
		s.thumbs.mu.Unlock()
		pending, err := s.opt.Store.PendingThumbnails(ctx, thumbBatch)
		if err != nil && ctx.Err() == nil {
			s.log.Error("thumbnails: list the pending ones", "err", err)
		}
		for _, f := range pending {
			if !s.claim(f.ID) {
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				s.unclaim(f.ID, false)
				return
			}
			workers.Go(func() {
				err := s.makeThumbnail(ctx, f)
				if err != nil && ctx.Err() == nil {
					s.log.Error("thumbnail failed; it is tried again at the janitor's next run", "file_id", hex.EncodeToString(f.ID), "err", err)
				}
				s.unclaim(f.ID, err != nil)
				<-slots
				s.wakeThumbnails()
			})
		}
	}
}

// makeThumbnail decodes one image within the pixel budget, seals its
// thumbnail beside it and records it. An image that does not decode is
// recorded as a plain file. It returns an error only for a failure worth
// retrying (the disk, the database), or when ctx ended before it began:
// the row then stays pending.
func (s *Service) makeThumbnail(ctx context.Context, f chat.File) error {
	pixels := int64(f.Width) * int64(f.Height)
	if err := s.budget.acquire(ctx, pixels); err != nil {
		return err
	}
	defer s.budget.release(pixels)
	// Once begun, a thumbnail is finished and recorded even if the server
	// is stopping: Run waits for it, and the database closes after Run.
	ctx = context.WithoutCancel(ctx)

	r, closeFile, err := s.open(f, false)
	if err != nil {
		if s.expiredMeanwhile(ctx, f) {
			return nil
		}
		if errors.Is(err, ErrDamaged) {
			// Trying again cannot help: the file stays without a preview,
			// and its download reports the damage.
			s.log.Error("stored file is damaged; no thumbnail made", "file_id", hex.EncodeToString(f.ID), "err", err)
			rec := f
			rec.ThumbPending = false
			_, err = s.opt.Store.SetThumbnail(ctx, rec)
		}
		return err
	}
	defer closeFile()
	done := func() {}
	if s.decodeHook != nil {
		done = s.decodeHook(pixels)
	}
	th, err := files.Thumbnail(r, ThumbPixels, ThumbSide)
	done()

	rec := f
	rec.ThumbPending = false
	if err != nil {
		s.log.Info("image does not decode; stored as a plain file", "file_id", hex.EncodeToString(f.ID), "err", err)
		rec.MimeType = "application/octet-stream"
	} else {
		name := f.StorageName + thumbSuffix
		if err := s.writeThumbnail(f, name, th.Data); err != nil {
			return err
		}
		rec.ThumbName, rec.ThumbSize, rec.ThumbMimeType = name, int64(len(th.Data)), th.MimeType
	}
	ok, err := s.opt.Store.SetThumbnail(ctx, rec)
	if (err != nil || !ok) && rec.ThumbName != "" {
		// Not recorded, or the file expired meanwhile: no orphan stays.
		os.Remove(s.path(rec.ThumbName))
	}
	return err
}

// expiredMeanwhile reports whether the janitor (or a discarded upload)
// expired the file while its thumbnail waited.
func (s *Service) expiredMeanwhile(ctx context.Context, f chat.File) bool {
	cur, err := s.opt.Store.FileByID(ctx, f.ID)
	return chat.ErrorCode(err) == chat.ENotFound || (err == nil && !cur.ExpiredAt.IsZero())
}

// writeThumbnail seals a thumbnail into the temporary folder and renames it
// into place, so that a crash never leaves half of one under its name.
func (s *Service) writeThumbnail(f chat.File, name string, data []byte) error {
	aead, ok := s.opt.Ring.AEAD(f.KeyVersion)
	if !ok {
		return errors.New("thumbnail: the file's key version is not in the ring")
	}
	out, err := os.CreateTemp(filepath.Join(s.opt.Dir, "tmp"), "thumb-*.part")
	if err != nil {
		return storageError(err)
	}
	fail := func(err error) error {
		out.Close()
		os.Remove(out.Name())
		return storageError(err)
	}
	w := files.NewWriter(out, aead, thumbID(f.ID))
	if _, err := w.Write(data); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	if err := out.Sync(); err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		os.Remove(out.Name())
		return storageError(err)
	}
	if err := os.Rename(out.Name(), s.path(name)); err != nil {
		os.Remove(out.Name())
		return storageError(err)
	}
	return nil
}
