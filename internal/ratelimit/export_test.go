package ratelimit

// Len is the number of buckets held, for tests of Sweep.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
