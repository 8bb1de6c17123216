package uploads

// SetDecodeHook makes s call hook as each thumbnail's decoding starts, with
// the pixels it holds; the function hook returns is called as it ends.
// Set it before Run.
func SetDecodeHook(s *Service, hook func(pixels int64) (done func())) { s.decodeHook = hook }

// BudgetWaiting is how many thumbnails wait for pixels of the budget.
func BudgetWaiting(s *Service) int { return s.budget.waiting() }

// ThumbnailWaiters is how many requests wait for a thumbnail being made.
func ThumbnailWaiters(s *Service) int {
	s.thumbs.mu.Lock()
	defer s.thumbs.mu.Unlock()
	return s.thumbs.waiting
}

// waiting is how many acquires are queued.
func (b *pixelBudget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}
