package uploads_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// solidPNG is a w×h PNG of one colour: a few hundred bytes that decode to a
// full w×h bitmap, as an image bomb below the pixel limit does.
func solidPNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 200, 40, 90, 255
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func (w *world) MustSaveImage(tb testing.TB, up *uploads.Service, img []byte) chat.File {
	tb.Helper()
	f, err := up.Save(w.ctx, uploads.Upload{Chat: w.chat, UploaderID: w.user.ID, Name: "picture.png", Body: bytes.NewReader(img)})
	if err != nil {
		tb.Fatalf("save image: %v", err)
	}
	return f
}

// MustRun runs up's background work until the test ends (or stop is
// called), and waits for it to return.
func MustRun(tb testing.TB, up *uploads.Service) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		up.Run(ctx, time.Hour)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				tb.Fatal("Run did not return within 10 s of its context ending")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// waitFor waits until cond holds, failing the test after a generous bound.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// thumbnailReady reports whether f's row has its thumbnail.
func (w *world) thumbnailReady(tb testing.TB, f chat.File) bool {
	tb.Helper()
	got, err := w.st.FileByID(w.ctx, f.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return got.ThumbName != "" && !got.ThumbPending
}

// decodes counts the pixels being decoded at once, through the test hook,
// and can hold every decode at its start until released.
type decodes struct {
	mu      sync.Mutex
	now     int64 // pixels being decoded
	peak    int64
	running int
	started int
	gate    chan struct{} // closed: decodes go on
	open    sync.Once
}

func newDecodes(s *uploads.Service, held bool) *decodes {
	d := &decodes{gate: make(chan struct{})}
	if !held {
		d.release()
	}
	uploads.SetDecodeHook(s, func(pixels int64) func() {
		d.mu.Lock()
		d.now += pixels
		d.peak = max(d.peak, d.now)
		d.running++
		d.started++
		d.mu.Unlock()
		<-d.gate
		return func() {
			d.mu.Lock()
			d.now -= pixels
			d.running--
			d.mu.Unlock()
		}
	})
	return d
}

// release lets held decodes go on; calling it again does nothing.
func (d *decodes) release() { d.open.Do(func() { close(d.gate) }) }

func (d *decodes) snapshot() (now, peak int64, running, started int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now, d.peak, d.running, d.started
}

// TestThumbnailPixelBudget: several images decoded together never hold
// more pixels than the budget, though there are workers enough to decode
// them all at once; images that fit together do decode together.
func TestThumbnailPixelBudget(t *testing.T) {
	const budget = 250_000
	w := newWorld(t)
	up := w.newUp(uploads.Options{DecodePixels: budget, ThumbWorkers: 5})
	d := newDecodes(up, true)
	img := solidPNG(t, 300, 300) // 90,000 pixels: two fit in the budget, three do not
	var saved []chat.File
	for range 5 {
		saved = append(saved, w.MustSaveImage(t, up, img))
	}
	MustRun(t, up)
	t.Cleanup(d.release) // before Run is stopped, should the test fail while decodes are held
	waitFor(t, "two decodes running and the rest waiting for the budget", func() bool {
		_, _, running, _ := d.snapshot()
		return running > 2 || (running == 2 && uploads.BudgetWaiting(up) == 3)
	})
	if now, _, running, _ := d.snapshot(); now > budget {
		t.Fatalf("%d decodes hold %d pixels at once, over the budget of %d", running, now, budget)
	}
	d.release()
	for _, f := range saved {
		waitFor(t, "every thumbnail", func() bool { return w.thumbnailReady(t, f) })
	}
	if _, peak, _, started := d.snapshot(); peak != 180_000 || started != 5 {
		t.Fatalf("peak %d pixels over %d decodes; want 180000 (two at a time) over 5, each image once", peak, started)
	}
}

// TestThumbnailAfterUpload: the upload answers before its thumbnail is
// made; meanwhile the file downloads, a request for the thumbnail waits for
// it and gets it once it is made, and one that gives up is told to try
// again.
func TestThumbnailAfterUpload(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{ThumbWait: time.Minute})
	d := newDecodes(up, true)
	MustRun(t, up)
	t.Cleanup(d.release)
	img := solidPNG(t, 640, 480)
	f := w.MustSaveImage(t, up, img) // returns although every decode is held
	if !f.ThumbPending || f.ThumbName != "" || f.Width != 640 || f.Height != 480 || f.MimeType != "image/png" {
		t.Fatalf("saved %+v", f)
	}
	waitFor(t, "the decode to start", func() bool { _, _, running, _ := d.snapshot(); return running == 1 })
	ref, asker := hex.EncodeToString(f.ID), chat.Identity{UserID: w.user.ID}

	type result struct {
		d   uploads.Download
		err error
	}
	ask := func(ctx context.Context) chan result {
		out := make(chan result, 1)
		go func() {
			d, err := up.Download(ctx, asker, ref, true)
			out <- result{d, err}
		}()
		return out
	}
	// A request that gives up while the thumbnail is made is told to try again.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := ask(ctx)
	waitFor(t, "the request to wait", func() bool { return uploads.ThumbnailWaiters(up) == 1 })
	cancel()
	r := <-gaveUp
	var ce *chat.Error
	if !errors.Is(r.err, uploads.ErrThumbnailPending) || !errors.As(r.err, &ce) || ce.Code != chat.ENotFound || ce.RetryAfter <= 0 {
		t.Fatalf("thumbnail while it is made: %v", r.err)
	}

	dl, err := up.Download(w.ctx, asker, ref, false)
	if err != nil {
		t.Fatalf("the file while its thumbnail is made: %v", err)
	}
	got, _ := io.ReadAll(dl.Content)
	dl.Close()
	if !bytes.Equal(got, img) {
		t.Fatal("the file came back changed")
	}
	// A non-member learns nothing, and waits for nothing.
	if _, err := up.Download(w.ctx, chat.Identity{UserID: 99999}, ref, true); !errors.Is(err, uploads.ErrNoSuchFile) {
		t.Fatalf("non-member: %v", err)
	}

	// A request that waits gets the thumbnail once it is made.
	waiting := ask(w.ctx)
	waitFor(t, "the request to wait", func() bool { return uploads.ThumbnailWaiters(up) == 1 })
	d.release()
	r = <-waiting
	if r.err != nil {
		t.Fatalf("the awaited thumbnail: %v", r.err)
	}
	defer r.d.Close()
	cfg, _, err := image.DecodeConfig(r.d.Content)
	if err != nil || cfg.Width != 320 || cfg.Height != 240 {
		t.Fatalf("thumbnail %+v, %v", cfg, err)
	}
	if u, _ := w.st.UserFileUsage(w.ctx, w.user.ID); u.Bytes != f.Size+r.d.File.ThumbSize || r.d.File.ThumbSize == 0 {
		t.Fatalf("usage %d bytes, want the file and its thumbnail", u.Bytes)
	}
}

// TestThumbnailWaitIsBounded: a request for a thumbnail that is not made
// within ThumbWait is told to try again, not held for ever.
func TestThumbnailWaitIsBounded(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{ThumbWait: 50 * time.Millisecond})
	f := w.MustSaveImage(t, up, solidPNG(t, 64, 64)) // no worker runs
	start := time.Now()
	_, err := up.Download(w.ctx, chat.Identity{UserID: w.user.ID}, hex.EncodeToString(f.ID), true)
	if !errors.Is(err, uploads.ErrThumbnailPending) || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
}

// TestThumbnailsSurviveRestarts: a thumbnail being made when the server
// stops is finished and recorded before Run returns; one still waiting for
// the budget stays pending and is made after the next start, as is one
// saved while nothing ran.
func TestThumbnailsSurviveRestarts(t *testing.T) {
	w := newWorld(t)
	img := solidPNG(t, 500, 400)

	// Saved while no worker runs (the server stopped before it got to it).
	idle := w.newUp(uploads.Options{})
	early := w.MustSaveImage(t, idle, img)

	// A budget of one image at a time: the first decode is held, the second
	// waits for the budget when the server stops.
	first := w.newUp(uploads.Options{DecodePixels: 200_000, ThumbWorkers: 2})
	d := newDecodes(first, true)
	stop := MustRun(t, first)
	t.Cleanup(d.release)
	waitFor(t, "the earlier image's decode and the next waiting", func() bool {
		_, _, running, _ := d.snapshot()
		return running == 1 && uploads.BudgetWaiting(first) == 0
	})
	late := w.MustSaveImage(t, first, img)
	waitFor(t, "the second image waiting for the budget", func() bool { return uploads.BudgetWaiting(first) == 1 })
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	// Stopping waits for the decode under way: release it only now.
	waitFor(t, "the waiting image to give up", func() bool { return uploads.BudgetWaiting(first) == 0 })
	d.release()
	<-stopped
	if !w.thumbnailReady(t, early) {
		t.Fatal("the thumbnail under way at shutdown was not recorded")
	}
	if w.thumbnailReady(t, late) {
		t.Fatal("the waiting thumbnail was made although the server stopped")
	}
	if got, _ := w.st.FileByID(w.ctx, late.ID); !got.ThumbPending {
		t.Fatalf("the waiting thumbnail is no longer pending: %+v", got)
	}

	// The next start makes it.
	second := w.newUp(uploads.Options{})
	MustRun(t, second)
	waitFor(t, "the pending thumbnail after the restart", func() bool { return w.thumbnailReady(t, late) })
}

// TestThumbnailOfMissingFile: an image whose stored file went missing
// before its thumbnail was made is recorded without one, once, instead of
// being tried again for ever; the file's download reports the damage.
func TestThumbnailOfMissingFile(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{})
	f := w.MustSaveImage(t, up, solidPNG(t, 64, 64))
	if err := os.Remove(filepath.Join(w.dir, f.StorageName[:2], f.StorageName)); err != nil {
		t.Fatal(err)
	}
	MustRun(t, up)
	waitFor(t, "the row to stop waiting for a thumbnail", func() bool {
		got, err := w.st.FileByID(w.ctx, f.ID)
		return err == nil && !got.ThumbPending
	})
	if got, _ := w.st.FileByID(w.ctx, f.ID); got.ThumbName != "" || !got.ExpiredAt.IsZero() {
		t.Fatalf("row after the missing file: %+v", got)
	}
	if _, err := up.Download(w.ctx, chat.Identity{UserID: w.user.ID}, hex.EncodeToString(f.ID), false); !errors.Is(err, uploads.ErrDamaged) {
		t.Fatalf("download of the missing file: %v", err)
	}
}
