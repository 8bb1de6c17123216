package metrics_test

import (
	"testing"

	"github.com/mapsim/mapsim-chat/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkCounter compares what the hot paths do (a counter whose labels
// were bound once) with looking the labels up at every event, and a
// histogram observation.
//
//	go test -run '^$' -bench . -cpu 1,2 ./internal/metrics/
func BenchmarkCounter(b *testing.B) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bench_total", Help: "x"}, []string{"reason"})
	b.Run("bound", func(b *testing.B) {
		c := vec.WithLabelValues("too_many")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
	b.Run("WithLabelValues", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				vec.WithLabelValues("too_many").Inc()
			}
		})
	})
	b.Run("histogram", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bench_seconds", Help: "x", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17)})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(0.003)
			}
		})
	})
}

// TestFamiliesUnderPrefix: a fresh registry gathers, and every family it
// holds is under mapsim_.
func TestFamiliesUnderPrefix(t *testing.T) {
	r := metrics.New("test")
	families, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 20 {
		t.Fatalf("only %d families", len(families))
	}
	for _, f := range families {
		if len(f.GetName()) < len(metrics.Prefix) || f.GetName()[:len(metrics.Prefix)] != metrics.Prefix {
			t.Errorf("family %s is not under %s", f.GetName(), metrics.Prefix)
		}
	}
}
