package auth

import (
	"context"
	"log/slog"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// revocationMargin is how far back each look for revocations reaches
// beyond the last one. A revocation is stamped with the clock of the
// process that made it (the admin command, another node) and becomes
// visible only once its transaction commits, so a look that starts exactly
// where the last one ended could miss one stamped just before it.
const revocationMargin = 30 * time.Second

// WatchRevocations looks every interval for sessions revoked and users
// disabled — by this process or by another, such as the admin command or
// another node — and hands each one once to revoked, so that their
// WebSockets close within about interval. It returns when ctx ends.
func (s *Service) WatchRevocations(ctx context.Context, interval time.Duration, log *slog.Logger, revoked func([]chat.Revocation)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	since := s.now().Add(-revocationMargin)
	seen := make(map[chat.Revocation]time.Time) // handed on, and when
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		found, err := s.store.RevokedSince(ctx, since)
		if err != nil {
			// Logged once per outage; the next look covers the gap.
			if !failing && ctx.Err() == nil {
				log.Warn("look for revoked sessions", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		var fresh []chat.Revocation
		for _, r := range found {
			if _, ok := seen[r]; !ok {
				seen[r] = now
				fresh = append(fresh, r)
			}
		}
		since = now.Add(-revocationMargin)
		for r, at := range seen {
			if at.Before(since.Add(-interval)) {
				delete(seen, r) // no look reaches back to it any more
			}
		}
		if len(fresh) > 0 {
			revoked(fresh)
		}
	}
}
