package uploads

import (
	"container/list"
	"context"
	"sync"
)

// pixelBudget is a weighted semaphore over pixels: decoding an image holds
// its whole bitmap in memory, so what is bounded is the sum of the pixels
// being decoded at once, across every upload, not the number of images.
// Waiters are served in arrival order, so a stream of small images cannot
// keep a large one waiting for ever. (golang.org/x/sync/semaphore does the
// same; this is the part of it we need, without the dependency.)
type pixelBudget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the pixels are granted
}

func newPixelBudget(size int64) *pixelBudget { return &pixelBudget{size: size} }

// clamp keeps a request within the budget: an image larger than the whole
// budget waits until it has the budget to itself, instead of for ever.
func (b *pixelBudget) clamp(n int64) int64 { return max(0, min(n, b.size)) }

// acquire takes n pixels, waiting until they are free or ctx ends.
func (b *pixelBudget) acquire(ctx context.Context, n int64) error {
	n = b.clamp(n)
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.size-b.used >= n {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready:
			// Granted just as ctx ended: hand the pixels on.
			b.used -= n
		default:
			b.waiters.Remove(elem)
		}
		// Either way the head of the queue may fit now.
		b.grantLocked()
		return ctx.Err()
	}
}

// release gives back n pixels taken by acquire.
func (b *pixelBudget) release(n int64) {
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.used < 0 {
		panic("uploads: pixel budget released more than it gave")
	}
	b.grantLocked()
}

// grantLocked wakes waiters in order while the next one fits.
func (b *pixelBudget) grantLocked() {
	for {
		front := b.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*budgetWaiter)
		if b.size-b.used < w.n {
			return
		}
		b.used += w.n
		b.waiters.Remove(front)
		close(w.ready)
	}
}
