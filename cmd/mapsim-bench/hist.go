package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// A histogram of durations in microseconds with bounded relative error: values
// below subCount µs are exact, larger ones fall in buckets 1/64 of their power
// of two wide (at most 1.6 % wide, so a reported percentile is within 0.8 % of
// the true one). Recording is lock-free, so every reader goroutine records
// into the same histogram.
const (
	subBits  = 7
	subCount = 1 << subBits // exact values below this
	subHalf  = subCount / 2 // buckets per power of two above it
	maxShift = 64 - subBits // enough for any int64
	nBuckets = subCount + maxShift*subHalf
)

type hist struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Int64  // µs
	min    atomic.Int64  // µs, valid when n > 0 (stored as min+1 so that 0 means unset)
}

// bucketOf maps a value in µs to its bucket.
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // ≥ 1
	m := v >> shift                          // in [subHalf, subCount)
	return subCount + (shift-1)*subHalf + int(m-subHalf)
}

// bucketRange returns the smallest and largest value of a bucket.
func bucketRange(b int) (lo, hi int64) {
	if b < subCount {
		return int64(b), int64(b)
	}
	shift := (b-subCount)/subHalf + 1
	m := int64((b-subCount)%subHalf + subHalf)
	return m << shift, (m+1)<<shift - 1
}

// record adds one duration.
func (h *hist) record(d time.Duration) { h.recordMicros(d.Microseconds()) }

func (h *hist) recordMicros(v int64) {
	if v < 0 {
		v = 0 // a clock step; count it as instant rather than lose it
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if (cur != 0 && v+1 >= cur) || h.min.CompareAndSwap(cur, v+1) {
			break
		}
	}
}

// count is the number of values recorded.
func (h *hist) count() uint64 { return h.n.Load() }

// quantile returns the nearest-rank q-quantile (0 < q ≤ 1) in µs: the
// smallest recorded value such that at least q of all values are at most it,
// to within its bucket (the bucket's midpoint, clamped to the recorded
// minimum and maximum). It returns 0 for an empty histogram.
func (h *hist) quantile(q float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.max.Load()
	}
	if rank == 1 {
		return h.min.Load() - 1
	}
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			lo, hi := bucketRange(b)
			v := lo + (hi-lo)/2
			if mx := h.max.Load(); v > mx {
				v = mx
			}
			if mn := h.min.Load() - 1; v < mn {
				v = mn
			}
			return v
		}
	}
	return h.max.Load()
}

// mean is the average in µs.
func (h *hist) mean() float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// summary is a histogram's percentiles in milliseconds, as reported.
type summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func (h *hist) summary() summary {
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	return summary{
		Count: h.count(),
		P50:   ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)),
		Max: ms(h.max.Load()), Mean: math.Round(h.mean()) / 1000,
	}
}

// series is a histogram per second of a run, made on first use, for the
// latency-over-time plot. Seconds past its end are not recorded.
type series struct {
	start int64 // Unix nanoseconds of second 0
	secs  []atomic.Pointer[hist]
}

func newSeries(start time.Time, d time.Duration) *series {
	n := int(d/time.Second) + 2
	return &series{start: start.UnixNano(), secs: make([]atomic.Pointer[hist], n)}
}

func (s *series) record(atNanos int64, v int64) {
	i := int((atNanos - s.start) / int64(time.Second))
	if i < 0 || i >= len(s.secs) {
		return
	}
	h := s.secs[i].Load()
	if h == nil {
		h = new(hist)
		if !s.secs[i].CompareAndSwap(nil, h) {
			h = s.secs[i].Load()
		}
	}
	h.recordMicros(v)
}

// points returns, per second with data, the second and the p50, p99 and
// maximum in ms, and the count.
func (s *series) points() (secs, p50, p99, mx, n []float64) {
	for i := range s.secs {
		h := s.secs[i].Load()
		if h == nil || h.count() == 0 {
			continue
		}
		secs = append(secs, float64(i))
		p50 = append(p50, float64(h.quantile(0.5))/1000)
		p99 = append(p99, float64(h.quantile(0.99))/1000)
		mx = append(mx, float64(h.max.Load())/1000)
		n = append(n, float64(h.count()))
	}
	return
}
