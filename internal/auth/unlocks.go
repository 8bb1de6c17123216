package auth

import (
	"context"
	"log/slog"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// UnlockStore is what the unlock watch reads: the unlocks the admin command
// stores, and their clean-up.
type UnlockStore interface {
	// UnlocksSince returns the unlocks stored at or after since.
	UnlocksSince(ctx context.Context, since time.Time) ([]chat.Unlock, error)
	// DeleteUnlocksBefore forgets unlocks stored before the given time.
	DeleteUnlocksBefore(ctx context.Context, before time.Time) error
}

// unlockKeep is how long a stored unlock is kept: long past the last look
// of any running server, and short enough that the table stays small.
const unlockKeep = 24 * time.Hour

// Unlock clears the login throttle of a username (at every address), of
// an address (for every username), or of the two together; "" leaves that
// side unnamed. The address is written as the server sees client
// addresses (see httpapi's clientIP).
func (s *Service) Unlock(username, addr string) {
	key := ""
	if username != "" {
		key = throttleKey(username)
	}
	s.throttle.Unlock(key, addr)
}

// WatchUnlocks looks every interval for unlocks stored by the admin
// command (the throttle lives in this process's memory, so the command
// cannot clear it itself) and applies each once. Unlocks stored before the
// server started need nothing (its throttle started empty). It returns when
// ctx ends.
func (s *Service) WatchUnlocks(ctx context.Context, st UnlockStore, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	// Stamped with the admin command's clock and visible once committed:
	// each look reaches back revocationMargin, as WatchRevocations does
	// (an unlock from just before the start is applied, harmlessly).
	since := s.now().Add(-revocationMargin)
	seen := make(map[int64]time.Time)
	failing := false
	lastCleanup := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		found, err := st.UnlocksSince(ctx, since)
		if err != nil {
			if !failing && ctx.Err() == nil {
				log.Warn("look for login unlocks", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		for _, u := range found {
			if _, ok := seen[u.ID]; ok {
				continue
			}
			seen[u.ID] = now
			s.Unlock(u.Username, u.Address)
			log.Info("login throttle cleared by an admin", "username", u.Username, "client_ip", u.Address, "unlock_id", u.ID)
		}
		since = now.Add(-revocationMargin)
		for id, at := range seen {
			if at.Before(since.Add(-interval)) {
				delete(seen, id)
			}
		}
		if now.Sub(lastCleanup) > time.Hour {
			lastCleanup = now
			if err := st.DeleteUnlocksBefore(ctx, now.Add(-unlockKeep)); err != nil && ctx.Err() == nil {
				log.Warn("forget old login unlocks", "err", err)
			}
		}
	}
}
