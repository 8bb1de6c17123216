package ratelimit_test

import (
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
)

// BenchmarkFrameAllow is the per-frame check of a connection's frame rate.
func BenchmarkFrameAllow(b *testing.B) {
	bk := ratelimit.NewBucket(1e9, 1e9)
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		bk.Allow(now.Add(time.Duration(i)))
	}
}

// BenchmarkKeyedAllow is the per-message check of a user's message rate.
func BenchmarkKeyedAllow(b *testing.B) {
	k := ratelimit.NewKeyed(1e9, 1e9)
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		k.Allow(int64(i%1000), now.Add(time.Duration(i)))
	}
}

// BenchmarkSharedAllow is the per-message check with the budget in Redis
// (redis-server on loopback): one EVALSHA per message, from one goroutine
// and, with -cpu, from many connections at once.
func BenchmarkSharedAllow(b *testing.B) {
	srv := redistest.Start(b)
	s := newShared(b, srv, nil)
	k := ratelimit.NewKeyed(1e9, 1e9)
	k.Share(s, "messages")
	now := time.Now()
	b.Run("serial", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if ok, _ := k.Allow(int64(i%1000), now); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				k.Allow(int64(i%1000), now)
			}
		})
	})
	if s.Fallbacks("messages") > 0 {
		b.Logf("%d checks fell back (Redis slower than 50 ms)", s.Fallbacks("messages"))
	}
}
