package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
)

// Locks are named locks among the nodes of an installation, for work one
// node at a time should do (the upload janitor). A lock lasts at most its
// ttl, so a node that dies holding it holds up the others no longer.
type Locks struct {
	rdb    *redis.Client
	prefix string
}

// NewLocks returns the locks of an installation.
func NewLocks(rdb *redis.Client, prefix string) *Locks {
	return &Locks{rdb: rdb, prefix: prefix}
}

// release deletes the lock only if it is still this holder's.
var release = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// TryLock takes a lock for at most ttl without waiting. It reports false
// when another node holds it, and also when Redis does not answer: the
// work waits for its next turn rather than run twice.
func (l *Locks) TryLock(ctx context.Context, name string, ttl time.Duration) (unlock func(), ok bool) {
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	key := l.prefix + "lock:" + name
	ok, err := l.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return nil, false
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		release.Run(ctx, l.rdb, []string{key}, token)
	}, true
}
