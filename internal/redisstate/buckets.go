package redisstate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Buckets keep token buckets in Redis, so that a rate limit per user or per
// address (messages, uploads, registrations) is one budget for every node of
// an installation. Each bucket is one key, <prefix>rate:<name>, holding the
// time at which it will be full again (the generic cell rate algorithm's
// theoretical arrival time), in microseconds of Redis's clock, so the nodes'
// clocks need not agree. A key expires when its bucket is full, so nothing
// outlives its use; a missing key is a full bucket.
//
// A check is one EVALSHA (go-redis's Script: EVAL once after Redis restarts
// and forgets the script), atomic among the nodes.
type Buckets struct {
	rdb    *redis.Client
	prefix string
}

// NewBuckets returns the buckets of an installation. rdb should fail fast
// (see FastClient): a rate check waits on it.
func NewBuckets(rdb *redis.Client, prefix string) *Buckets {
	return &Buckets{rdb: rdb, prefix: prefix}
}

// FastClient is a client to the same Redis as rdb for checks that must not
// wait: every dial, read, write and wait for a pooled connection gives up
// after timeout, and nothing is retried (a retried take could count twice).
func FastClient(rdb *redis.Client, timeout time.Duration) *redis.Client {
	o := *rdb.Options()
	// The copy must not share the first client's push-notification state
	// (go-redis registers its handlers once per processor).
	o.PushNotificationProcessor, o.MaintNotificationsConfig = nil, nil
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1
	// One dial, no backoff between dials (go-redis tries 5, 100 ms apart).
	o.DialerRetries, o.DialerRetryTimeout, o.DialerRetryBackoff = 1, time.Millisecond, nil
	// Connections kept open, so that a check seldom waits for a dial.
	o.MinIdleConns = max(o.MinIdleConns, 2)
	o.ClientName = "mapsim-chat-limits"
	return redis.NewClient(&o)
}

// takeToken is GCRA: a bucket of burst tokens that gains one every interval µs
// holds tat, the time it is full again. A token may be taken while tat is
// at most burst-1 intervals ahead of now; taking one moves tat an interval
// on. A give-back (cost -1) moves it an interval back. The reply is 0, or
// the microseconds until a token may be taken.
var takeToken = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
if cost > 0 then
  local short = tat - now - (burst - 1) * interval
  if short > 0 then return math.max(1, math.ceil(short)) end
  tat = tat + interval
else
  tat = tat - interval
end
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
return 0`)

// Take takes a token from the bucket name, which gains perSecond tokens a
// second and holds burst. When there is none it takes nothing and reports
// how long until there will be one.
func (b *Buckets) Take(ctx context.Context, name string, perSecond float64, burst int) (bool, time.Duration, error) {
	wait, err := b.run(ctx, name, perSecond, burst, 1)
	if err != nil {
		return false, 0, err
	}
	return wait == 0, time.Duration(wait) * time.Microsecond, nil
}

// GiveBack returns a token that Take took and that was not used (a
// registration refused after its check).
func (b *Buckets) GiveBack(ctx context.Context, name string, perSecond float64, burst int) error {
	_, err := b.run(ctx, name, perSecond, burst, -1)
	return err
}

func (b *Buckets) run(ctx context.Context, name string, perSecond float64, burst int, cost int) (int64, error) {
	if perSecond <= 0 || burst < 1 {
		return 0, fmt.Errorf("redisstate: bucket %q: rate %g and burst %d must be positive", name, perSecond, burst)
	}
	interval := strconv.FormatFloat(1e6/perSecond, 'f', 3, 64)
	n, err := takeToken.Run(ctx, b.rdb, []string{b.prefix + "rate:" + name}, interval, burst, cost).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstate: rate bucket: %w", err)
	}
	return n, nil
}
