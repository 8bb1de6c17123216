// Package sequencer commits the server's changes one at a time, in the order
// they were submitted, and publishes each one after it has committed, in
// that same order. Every change that gets an id in a chat's sequence —
// messages, edits, deletes, membership changes — goes through it: that is
// what makes per-connection order and gap-free sync hold, also on MySQL,
// where concurrent transactions could commit ids out of order.
//
// Two goroutines do the work. The committer takes the next piece of work
// from the queue and commits it (a Batch gathers the like items queued right
// behind it into the same transaction). It hands what the commit produced to
// the publisher, which publishes it and answers whoever asked, while the
// committer goes on with the next piece. Publishing a group (encoding each
// message and queueing it to every member's connection) was a third of the
// committer's time before the two were split.
package sequencer

import (
	"context"
	"sync"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Work is one kind of change. Each kind says how it commits and what it
// publishes.
type Work interface {
	// Commit commits the change. It runs on the committer goroutine, so no
	// other work commits meanwhile; ctx is not cancelled at shutdown (work
	// taken is finished), so Commit bounds its own time. It returns what to
	// do once the change has committed — publish its events, answer who
	// asked — which runs on the publisher goroutine, after the publication
	// of all earlier work. nil publishes nothing.
	Commit(ctx context.Context) Publication
}

// Publication is what a piece of work does after its commit: it runs on the
// publisher goroutine, in commit order, and must not block for long (it
// delays every publication behind it).
type Publication func(ctx context.Context)

// ErrStopped is the answer to work submitted after the sequencer stopped.
var ErrStopped = chat.Errorf(chat.EUnavailable, "The server is shutting down; send again after reconnecting.")

// Options size a Sequencer.
type Options struct {
	// QueueDepth is how much work may wait for the committer before
	// Submit waits.
	QueueDepth int
	// PublishDepth is how many commits may wait for the publisher before
	// the committer waits for it.
	PublishDepth int
}

// Sequencer runs work in order. Create it with New, start it with Run.
type Sequencer struct {
	queue chan entry
	pubs  chan Publication

	// Shutdown: Run closes closing, then, holding mu for writing, sets
	// closed; Submit holds mu for reading while it queues. So once closed
	// is set nothing more enters the queue, and Run commits everything that
	// did.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{}
	stopped chan struct{} // closed when Run has committed and published everything
}

// New returns a Sequencer.
func New(o Options) *Sequencer {
	return &Sequencer{
		queue:   make(chan entry, max(o.QueueDepth, 1)),
		pubs:    make(chan Publication, max(o.PublishDepth, 1)),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// entry is a queued piece of work: a Work on its own, or an item of a Batch.
type entry interface {
	// commit commits the entry and whatever queued right behind it may
	// join it. next is an entry it took from the queue but could not take
	// in, to be committed next; nil for none.
	commit(ctx context.Context, s *Sequencer) (p Publication, next entry)
}

// single is a Work queued on its own.
type single struct{ w Work }

func (e single) commit(ctx context.Context, _ *Sequencer) (Publication, entry) {
	return e.w.Commit(ctx), nil
}

// Submit queues work. It returns once the work is queued, not committed:
// the work's Publication answers its submitter. An error means the work
// was not queued and will never commit.
func (s *Sequencer) Submit(ctx context.Context, w Work) error {
	return s.enqueue(ctx, single{w})
}

func (s *Sequencer) enqueue(ctx context.Context, e entry) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrStopped
	}
	select {
	case s.queue <- e:
		return nil
	case <-s.closing:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopped is closed once Run has returned: everything queued has been
// committed and published.
func (s *Sequencer) Stopped() <-chan struct{} { return s.stopped }

// Run commits queued work until ctx ends, then commits and publishes what
// is already queued and returns. Call it once.
func (s *Sequencer) Run(ctx context.Context) {
	// Work already taken is finished even after ctx ends.
	wctx := context.WithoutCancel(ctx)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for p := range s.pubs {
			p(wctx)
		}
	}()
	defer func() {
		close(s.pubs)
		<-published
		close(s.stopped)
	}()
	for {
		select {
		case e := <-s.queue:
			s.commit(wctx, e)
		case <-ctx.Done():
			close(s.closing)
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			for {
				select {
				case e := <-s.queue:
					s.commit(wctx, e)
				default:
					return
				}
			}
		}
	}
}

// commit commits an entry, and the one it could not take in, and so on.
func (s *Sequencer) commit(ctx context.Context, e entry) {
	for e != nil {
		var p Publication
		p, e = e.commit(ctx, s)
		if p != nil {
			s.pubs <- p
		}
	}
}

// Batch gathers work of one kind that commits in one transaction: items
// submitted through the same Batch that stand next to each other in the
// queue are committed together, up to a maximum, by one call of its commit
// function. Other work in between breaks a batch, so order is kept.
type Batch[T any] struct {
	seq    *Sequencer
	max    int
	commit func(ctx context.Context, items []T) Publication
	// items is the committer's buffer (only the committer goroutine uses
	// it); commit must not keep the slice beyond its call.
	items []T
}

// NewBatch returns a Batch whose items are committed by commit, at most
// max at a time. commit runs on the committer goroutine, like Work.Commit,
// and must not keep items beyond its call (the buffer is reused).
func NewBatch[T any](seq *Sequencer, max int, commit func(ctx context.Context, items []T) Publication) *Batch[T] {
	return &Batch[T]{seq: seq, max: max, commit: commit, items: make([]T, 0, max)}
}

// Submit queues one item; see Sequencer.Submit.
func (b *Batch[T]) Submit(ctx context.Context, item T) error {
	return b.seq.enqueue(ctx, batchItem[T]{b, item})
}

// batchItem is an item of a Batch in the queue.
type batchItem[T any] struct {
	b    *Batch[T]
	item T
}

// commit takes the items of the same batch queued right behind this one,
// without waiting for more, and commits them together.
func (e batchItem[T]) commit(ctx context.Context, s *Sequencer) (Publication, entry) {
	b := e.b
	items := append(b.items[:0], e.item)
	var next entry
gather:
	for len(items) < b.max {
		select {
		case n := <-s.queue:
			if same, ok := n.(batchItem[T]); ok && same.b == b {
				items = append(items, same.item)
				continue
			}
			next = n
			break gather
		default:
			break gather
		}
	}
	p := b.commit(ctx, items)
	clear(items) // drop references for the collector
	return p, next
}

// Result is a piece of work's answer to its submitter: a value, or why the
// work failed.
type Result[T any] struct {
	Value T
	Err   error
}

// Reply returns a channel for one Result: the work's Publication sends on
// it (never blocking), and the submitter waits with Await.
func Reply[T any]() chan Result[T] { return make(chan Result[T], 1) }

// Await waits for the answer of work submitted to s. If s stops without
// answering (the work was never taken), it returns ErrStopped; if ctx ends
// first, ctx's error — the work may still commit, and a retry with the same
// client id is recognised.
func Await[T any](ctx context.Context, s *Sequencer, reply <-chan Result[T]) (T, error) {
	select {
	case r := <-reply:
		return r.Value, r.Err
	case <-s.stopped:
		// Everything taken has been published by now; look once more.
		select {
		case r := <-reply:
			return r.Value, r.Err
		default:
		}
		var zero T
		return zero, ErrStopped
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
