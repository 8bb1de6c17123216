// Package redisstate keeps in Redis the state that the nodes of one
// installation must share: WebSocket tickets (single use on any node) and
// the login throttle's and rate limits' budgets. Every key starts with the
// installation's REDIS_PREFIX.
package redisstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tickets keeps WebSocket tickets in Redis: a ticket asked for on one node
// opens a socket on any, once. The key is the ticket's SHA-256, so Redis
// never holds a usable ticket; it expires with the ticket. Each user's
// pending tickets are listed, at most PerUser of them: asking for more
// makes the user's own oldest invalid, as on one node.
type Tickets struct {
	rdb     *redis.Client
	prefix  string
	PerUser int
}

// NewTickets returns the ticket store of an installation.
func NewTickets(rdb *redis.Client, prefix string) *Tickets {
	return &Tickets{rdb: rdb, prefix: prefix, PerUser: 64}
}

func (t *Tickets) key(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return t.prefix + "ticket:" + hex.EncodeToString(sum[:])
}

func (t *Tickets) userKey(userID int64) string {
	return t.prefix + "tickets:" + strconv.FormatInt(userID, 10)
}

// Put stores a ticket of a session for ttl.
func (t *Tickets) Put(ctx context.Context, ticket string, userID, sessionID int64, ttl time.Duration) error {
	key := t.key(ticket)
	_, err := t.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, fmt.Sprintf("%d:%d", userID, sessionID), ttl)
		p.RPush(ctx, t.userKey(userID), key)
		p.LTrim(ctx, t.userKey(userID), int64(-t.PerUser), -1)
		p.Expire(ctx, t.userKey(userID), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store ticket in Redis: %w", err)
	}
	return nil
}

// take removes a ticket and returns "user:session" if it was pending and
// still among its user's newest.
var take = redis.NewScript(`
local v = redis.call('GETDEL', KEYS[1])
if not v then return false end
local user = string.match(v, '^(%d+):')
if redis.call('LREM', ARGV[1] .. user, 1, KEYS[1]) == 0 then return false end
return v`)

// Take consumes a ticket: the session it was issued for, and whether it
// was valid (pending, not used, not expired, not pushed out).
func (t *Tickets) Take(ctx context.Context, ticket string) (sessionID int64, ok bool, err error) {
	v, err := take.Run(ctx, t.rdb, []string{t.key(ticket)}, t.prefix+"tickets:").Text()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("take ticket from Redis: %w", err)
	}
	_, session, found := strings.Cut(v, ":")
	if !found {
		return 0, false, nil
	}
	sessionID, err = strconv.ParseInt(session, 10, 64)
	return sessionID, err == nil, nil
}
