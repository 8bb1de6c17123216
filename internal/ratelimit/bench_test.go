package ratelimit_test

import (
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/ratelimit"
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
