package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// progress shows how far a long admin command has got, on one line that it
// rewrites, when standard output is a terminal; otherwise (a pipe, a file,
// a cron job's mail) it shows nothing.
type progress struct {
	w     io.Writer
	on    bool
	label string

	mu    sync.Mutex
	done  int64
	shown time.Time
	drawn bool
}

// progressEvery is how often the line is redrawn at most.
const progressEvery = 100 * time.Millisecond

func newProgress(stdout io.Writer, label string) *progress {
	f, ok := stdout.(*os.File)
	return &progress{w: stdout, on: ok && isTerminal(f.Fd()), label: label}
}

// set shows done of total bytes.
func (p *progress) set(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if time.Since(p.shown) < progressEvery && done < total {
		return
	}
	p.shown = time.Now()
	pct := 100
	if total > 0 {
		pct = int(min(100, done*100/total))
	}
	fmt.Fprintf(p.w, "\r%s: %3d%% (%s of %s)\033[K", p.label, pct, uploads.HumanBytes(done), uploads.HumanBytes(total))
	p.drawn = true
}

// counter is a writer that adds what passes through it to the progress.
func (p *progress) counter(total int64) io.Writer { return &progressCounter{p: p, total: total} }

type progressCounter struct {
	p     *progress
	total int64
}

func (c *progressCounter) Write(b []byte) (int, error) {
	c.p.mu.Lock()
	done := c.p.done + int64(len(b))
	c.p.mu.Unlock()
	c.p.set(done, c.total)
	return len(b), nil
}

// watchFile shows a file growing towards about total bytes (a database
// being copied by SQLite itself) until the returned stop is called.
func (p *progress) watchFile(path string, total int64) (stop func()) {
	if !p.on {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p.set(min(fileSize(path), total), total)
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		p.finish()
	}
}

// finish ends the progress line, so that what follows starts on its own.
func (p *progress) finish() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
