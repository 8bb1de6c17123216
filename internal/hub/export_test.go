package hub

import "slices"

// Online returns the usernames of users with at least one connection here
// (or in the presence grace), sorted; tests watch connections come and go
// through it.
func (h *Hub) Online() []string {
	h.idx.mu.RLock()
	out := make([]string, 0, len(h.idx.names))
	for _, n := range h.idx.names {
		out = append(out, n)
	}
	h.idx.mu.RUnlock()
	slices.Sort(out)
	return out
}
