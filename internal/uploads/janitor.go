package uploads

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// makeRoomLocked expires files until incoming more bytes fit under 90 % of
// the quota, when they would not fit under the quota as it is. The caller
// holds s.janitor.
func (s *Service) makeRoomLocked(ctx context.Context, incoming int64) error {
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

// Prune runs the janitor once: over the quota, it expires files until
// usage is under 90 % of it. It also removes uploads abandoned in the
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

// expireLocked expires files until usage is at most target. Whoever stores
// the most loses their oldest file first, and after each file the heaviest
// uploader is chosen again, so that one user filling the folder expires
// their own files, not everyone else's. Files younger than MinAge are
// spared while any older file remains: only when every file left is young
// does the janitor turn to them, in the same order. The rows stay
// (messages show "file expired"); the sealed files go.
func (s *Service) expireLocked(ctx context.Context, usage, target int64, why string) (expired int, freed int64, err error) {
	defer func() {
		if expired > 0 {
			s.log.Info("quota janitor expired files", "reason", why, "files", expired, "freed_bytes", freed,
				"usage_bytes", usage-freed, "quota_bytes", s.opt.MaxTotalBytes)
		}
	}()
	if usage <= target {
		return 0, 0, nil
	}
	byUser, err := s.opt.Store.FileUsageByUploader(ctx)
	if err != nil {
		return 0, 0, err
	}
	stored := make(map[int64]int64, len(byUser))
	for id, u := range byUser {
		stored[id] = u.Bytes
	}
	now := s.opt.Now()
	for _, before := range []time.Time{now.Add(-s.opt.MinAge), endOfTime} {
		queue := make(map[int64][]chat.File) // each uploader's next candidates
		done := make(map[int64]bool)         // uploaders with none left before `before`
		for usage-freed > target {
			user, ok := heaviest(stored, done)
			if !ok {
				break
			}
			if len(queue[user]) == 0 {
				batch, err := s.opt.Store.OldestFilesOf(ctx, user, before, 100)
				if err != nil {
					return expired, freed, err
				}
				if len(batch) == 0 {
					done[user] = true
					continue
				}
				queue[user] = batch
			}
			f := queue[user][0]
			queue[user] = queue[user][1:]
			ok, err := s.opt.Store.ExpireFile(ctx, f.ID, s.opt.Now().UTC())
			if err != nil {
				return expired, freed, err
			}
			stored[user] -= f.Size + f.ThumbSize
			if !ok {
				continue // expired by someone else meanwhile (a discarded upload)
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

// endOfTime is after every file's creation: the janitor's second pass takes
// files of any age.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// heaviest returns the uploader storing the most bytes among those not
// done; the lower id wins a tie, so that the order is the same every run.
func heaviest(stored map[int64]int64, done map[int64]bool) (int64, bool) {
	var (
		best  int64
		most  int64 = -1
		found bool
	)
	for id, n := range stored {
		if done[id] {
			continue
		}
		if n > most || (n == most && id < best) {
			best, most, found = id, n, true
		}
	}
	return best, found
}

// staleTemp is how old an unfinished upload must be before the periodic
// janitor removes it.
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

// RemoveLeftovers removes what a crash or a kill left in the upload
// folder: every unfinished upload in Dir/tmp, and every stored file without
// a live row (an upload that stopped between storing its file and
// recording it, a file whose expiry stopped before it was removed, a
// thumbnail whose file is gone or that was never recorded). Call it at
// start, before the server listens: no upload may be running. Only names
// the service itself writes are touched (32 hex digits, "-t" for a
// thumbnail, in the folder named after their first two); anything else in
// the folder is left alone. It returns how many files it removed.
func (s *Service) RemoveLeftovers(ctx context.Context) (int, error) {
	removed := 0
	tmp := filepath.Join(s.opt.Dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if s.inUseElsewhere(e) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return removed, err
		}
		removed++
	}

	entries, err = os.ReadDir(s.opt.Dir)
	if err != nil {
		return removed, err
	}
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 2 || !isLowerHex(e.Name()) {
			continue
		}
		n, err := s.removeOrphansIn(ctx, e.Name())
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// removeOrphansIn removes the stored files of one two-hex-digit folder that
// no live row claims.
func (s *Service) removeOrphansIn(ctx context.Context, sub string) (int, error) {
	dir := filepath.Join(s.opt.Dir, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var ours []string            // file names that look like ours
	storage := map[string]bool{} // the storage names they belong to
	for _, e := range entries {
		base, _ := strings.CutSuffix(e.Name(), thumbSuffix)
		if !e.Type().IsRegular() || len(base) != 32 || !isLowerHex(base) || base[:2] != sub || s.inUseElsewhere(e) {
			continue
		}
		ours = append(ours, e.Name())
		storage[base] = true
	}
	if len(ours) == 0 {
		return 0, nil
	}
	names := make([]string, 0, len(storage))
	for n := range storage {
		names = append(names, n)
	}
	rows, err := s.opt.Store.FilesByStorageNames(ctx, names)
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{}
	for _, f := range rows {
		if !f.ExpiredAt.IsZero() {
			continue
		}
		keep[f.StorageName] = true
		if f.ThumbName != "" {
			keep[f.ThumbName] = true
		}
	}
	removed := 0
	for _, name := range ours {
		if keep[name] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// inUseElsewhere reports whether, on a folder shared by several nodes, an
// entry is recent enough that another node may be writing or recording it.
func (s *Service) inUseElsewhere(e os.DirEntry) bool {
	if !s.opt.Shared {
		return false
	}
	info, err := e.Info()
	return err != nil || !info.ModTime().Before(s.opt.Now().Add(-staleTemp))
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// pruneOnce runs the quota janitor, on one node at a time when several
// share the folder (Options.Lock).
func (s *Service) pruneOnce(ctx context.Context, interval time.Duration) {
	if s.opt.Lock != nil {
		release, ok := s.opt.Lock(ctx, "janitor", interval)
		if !ok {
			return // another node is at it
		}
		defer release()
	}
	expired, _, err := s.Prune(ctx)
	if ctx.Err() != nil {
		return // stopping: the run was cut short, not failed
	}
	s.opt.Metrics.JanitorRuns.Inc()
	s.opt.Metrics.Expired.Add(float64(expired))
	if err != nil {
		s.opt.Metrics.JanitorFails.Inc()
		s.log.Error("quota janitor", "err", err)
	}
}

// Run makes thumbnails in the background and prunes every interval, until
// ctx ends. It returns once the thumbnails being made have been recorded;
// those not started stay pending and are made at the next start.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	var thumbs sync.WaitGroup
	thumbs.Go(func() { s.runThumbnails(ctx) })
	defer thumbs.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.pruneOnce(ctx, interval)
			if s.rate != nil {
				s.rate.Sweep(s.opt.Now())
			}
			s.retryThumbnails()
		}
	}
}
