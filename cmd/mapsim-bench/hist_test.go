package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of a sample: the smallest value
// with at least q of the sample at or below it.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func TestBucketsCoverEveryValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64}
	for range 10000 {
		values = append(values, rng.Int64N(1<<uint(rng.IntN(62)+1)))
	}
	prevHi := int64(-1)
	for b := range nBuckets {
		lo, hi := bucketRange(b)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d (buckets must tile the line)", b, lo, prevHi+1)
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			break
		}
	}
	for _, v := range values {
		b := bucketOf(v)
		lo, hi := bucketRange(b)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d = [%d, %d]", v, b, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1) > float64(lo)/subHalf+1 {
			t.Fatalf("bucket of %d is [%d, %d]: wider than 1/%d of its start", v, lo, hi, subHalf)
		}
	}
}

func TestQuantileMatchesExact(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sample func(r *rand.Rand) int64
		n      int
	}{
		{"small exact values", func(r *rand.Rand) int64 { return r.Int64N(100) }, 1000},
		{"uniform up to 50 ms", func(r *rand.Rand) int64 { return r.Int64N(50000) }, 20000},
		{"long tail", func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * 3000) }, 50000},
		{"two modes", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 2_000_000 + r.Int64N(1000)
			}
			return 1500 + r.Int64N(500)
		}, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			var h hist
			vals := make([]int64, tc.n)
			for i := range vals {
				vals[i] = tc.sample(rng)
				h.recordMicros(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				got, want := h.quantile(q), exactQuantile(vals, q)
				tol := max(float64(want)/subCount, 1) // half a bucket, at most 0.8 %
				if math.Abs(float64(got-want)) > tol {
					t.Errorf("q=%g: got %d µs, want %d ± %.0f", q, got, want, tol)
				}
			}
			if h.quantile(1) != vals[len(vals)-1] {
				t.Errorf("max: got %d, want %d", h.quantile(1), vals[len(vals)-1])
			}
			if h.count() != uint64(tc.n) {
				t.Errorf("count %d, want %d", h.count(), tc.n)
			}
		})
	}
}

func TestQuantileEdges(t *testing.T) {
	var h hist
	if h.quantile(0.99) != 0 || h.summary().Count != 0 {
		t.Fatal("an empty histogram must report zeros")
	}
	h.record(42 * time.Millisecond)
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if got := h.quantile(q); got != 42000 {
			t.Errorf("one value: q=%g gives %d, want 42000 (clamped to the value seen)", q, got)
		}
	}
	h.recordMicros(-5) // a clock step counts as zero, not as a huge value
	if h.quantile(0.01) != 0 || h.max.Load() != 42000 {
		t.Errorf("negative value: min %d max %d", h.quantile(0.01), h.max.Load())
	}
	// Nearest rank: of 1..100, p99 is 99 and p50 is 50.
	var k hist
	for v := int64(1); v <= 100; v++ {
		k.recordMicros(v)
	}
	if k.quantile(0.99) != 99 || k.quantile(0.5) != 50 || k.quantile(0.999) != 100 {
		t.Errorf("1..100: p50 %d p99 %d p99.9 %d; want 50, 99, 100", k.quantile(0.5), k.quantile(0.99), k.quantile(0.999))
	}
	s := k.summary()
	if s.P50 != 0.05 || s.Max != 0.1 || s.Mean != 0.051 {
		t.Errorf("summary in ms: %+v", s)
	}
}

func TestSeriesPerSecond(t *testing.T) {
	start := time.Unix(1000, 0)
	s := newSeries(start, 3*time.Second)
	s.record(start.Add(500*time.Millisecond).UnixNano(), 1000)
	s.record(start.Add(2500*time.Millisecond).UnixNano(), 3000)
	s.record(start.Add(2600*time.Millisecond).UnixNano(), 5000)
	s.record(start.Add(-time.Second).UnixNano(), 9) // before the start: ignored
	s.record(start.Add(time.Hour).UnixNano(), 9)    // past the end: ignored
	secs, p50, _, mx, n := s.points()
	if !slices.Equal(secs, []float64{0, 2}) || !slices.Equal(n, []float64{1, 2}) {
		t.Fatalf("seconds %v counts %v", secs, n)
	}
	if p50[0] != 1 || mx[1] != 5 {
		t.Fatalf("p50 %v max %v (ms)", p50, mx)
	}
}
