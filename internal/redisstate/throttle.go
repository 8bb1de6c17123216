package redisstate

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Throttles keep the login throttle's entries (auth.Throttle) in Redis, so
// that every node of an installation counts against one budget per
// username, per address and per username at an address. Each entry is a
// hash: f (failures), l (the last failure) and u (locked or paced until),
// in Unix milliseconds, and r:<id> for each check in flight, holding when
// that reservation lapses. An update reads the three hashes, runs the
// throttle's own rules on them in the node and writes them back in one
// MULTI under WATCH, so two nodes never both take the last free check.
type Throttles struct {
	rdb    *redis.Client
	prefix string
	// ReservationTTL is how long a check in flight counts when its node
	// never ends it (it died mid-check).
	ReservationTTL time.Duration
	// Keep is how long an entry outlives its last change; the throttle
	// forgets failures after 15 quiet minutes and locks for 15 at most.
	Keep time.Duration
}

// ThrottleEntry is one key's state; see auth.ThrottleEntry.
type ThrottleEntry struct {
	Failures, Pending int
	Last, Until       time.Time
}

// NewThrottles returns the throttle entries of an installation.
func NewThrottles(rdb *redis.Client, prefix string) *Throttles {
	return &Throttles{rdb: rdb, prefix: prefix, ReservationTTL: time.Minute, Keep: 31 * time.Minute}
}

// ErrContended is returned when other nodes changed the same entries on
// every try.
var ErrContended = errors.New("redisstate: throttle entries changed on every try")

func (t *Throttles) pairKey(username, addr string) string {
	return t.prefix + "throttle:pair:" + username + "\x00" + addr
}

// keys of a username at an address, the address, and the username; a
// username at an address is also listed under the address, for Unlock.
func (t *Throttles) keys(username, addr string) []string {
	return []string{t.pairKey(username, addr), t.prefix + "throttle:addr:" + addr, t.prefix + "throttle:user:" + username}
}

// Update reads the entries of a username at an address, of the address and
// of the username, lets f change them and writes them back atomically.
// release, if not "", is a reservation to drop first; f returns one to add
// ("" for none). f may run more than once.
func (t *Throttles) Update(ctx context.Context, username, addr string, now time.Time, release string,
	f func(pair, addr, user *ThrottleEntry) (reserve string)) error {
	keys := t.keys(username, addr)
	pairsOf := t.prefix + "throttle:pairs:" + addr
	for try := 0; try < 20; try++ {
		err := t.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cmds := make([]*redis.MapStringStringCmd, len(keys))
			if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.HGetAll(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
			entries := make([]*ThrottleEntry, len(keys))
			stale := make([][]string, len(keys))
			for i, c := range cmds {
				entries[i], stale[i] = parseEntry(c.Val(), now, release)
			}
			reserve := f(entries[0], entries[1], entries[2])
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					e := entries[i]
					p.HSet(ctx, k, "f", e.Failures, "l", millis(e.Last), "u", millis(e.Until))
					if len(stale[i]) > 0 {
						p.HDel(ctx, k, stale[i]...)
					}
					if reserve != "" {
						p.HSet(ctx, k, "r:"+reserve, now.Add(t.ReservationTTL).UnixMilli())
					}
					p.PExpire(ctx, k, t.Keep)
				}
				p.SAdd(ctx, pairsOf, username)
				p.PExpire(ctx, pairsOf, t.Keep)
				return nil
			})
			return err
		}, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return ErrContended
}

// parseEntry reads a hash; stale lists the reservations that lapsed or are
// released, to delete.
func parseEntry(h map[string]string, now time.Time, release string) (*ThrottleEntry, []string) {
	e := &ThrottleEntry{}
	var stale []string
	for k, v := range h {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case k == "f":
			e.Failures = int(n)
		case k == "l":
			e.Last = fromMillis(n)
		case k == "u":
			e.Until = fromMillis(n)
		case strings.HasPrefix(k, "r:"):
			if k == "r:"+release || n <= now.UnixMilli() {
				stale = append(stale, k)
			} else {
				e.Pending++
			}
		}
	}
	return e, stale
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// Unlock clears the failures (not the checks in flight) of a username at
// every address, of an address for every username, or of the two together
// ("" for the one not named).
func (t *Throttles) Unlock(ctx context.Context, username, addr string) error {
	var keys []string
	switch {
	case username != "" && addr != "":
		keys = append(keys, t.pairKey(username, addr))
	case addr != "":
		users, err := t.rdb.SMembers(ctx, t.prefix+"throttle:pairs:"+addr).Result()
		if err != nil {
			return err
		}
		for _, u := range users {
			keys = append(keys, t.pairKey(u, addr))
		}
		keys = append(keys, t.prefix+"throttle:addr:"+addr)
	default:
		// The username's pairs, at whatever address.
		pattern := t.prefix + "throttle:pair:" + escapeGlob(username) + "\x00*"
		iter := t.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
		keys = append(keys, t.prefix+"throttle:user:"+username)
	}
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HSet(ctx, k, "f", 0, "l", 0, "u", 0)
			p.PExpire(ctx, k, t.Keep)
		}
		return nil
	})
	return err
}

// escapeGlob quotes the characters SCAN's MATCH reads as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
