package main

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkSendAck measures the whole message path over real WebSockets:
// frame → check → seal → group commit (durable) → ack, with every message
// also broadcast to the senders' connections. It reports committed
// messages per second and the ack latency a sender sees.
//
//	go test -run '^$' -bench SendAck -benchtime 5000x ./cmd/mapsim-chat/
func BenchmarkSendAck(b *testing.B) {
	for _, be := range backends() {
		for _, senders := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/senders=%d", be.name, senders), func(b *testing.B) {
				env := withoutRateLimits(baseEnv(b, be.env(b)))
				srv := MustStart(b, env)
				clients := make([]*wsClient, senders)
				for i := range clients {
					tok := srv.MustUser(b, fmt.Sprintf("bench%d", i))
					clients[i] = srv.MustDial(b, tok, "global")
					clients[i].nextType("hello")
				}
				var (
					wg        sync.WaitGroup
					mu        sync.Mutex
					latencies []time.Duration
				)
				b.ResetTimer()
				start := time.Now()
				for i, c := range clients {
					n := b.N / senders
					if i < b.N%senders {
						n++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						own := make([]time.Duration, 0, n)
						for j := 0; j < n; j++ {
							sent := time.Now()
							c.send(map[string]any{"type": "text", "text": "benchmark message of a typical length, about eighty bytes long.", "client_id": fmt.Sprintf("b%d-%d", i, j)})
							c.nextType("ack")
							own = append(own, time.Since(sent))
						}
						mu.Lock()
						latencies = append(latencies, own...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				if p := percentile(latencies, 0.99); p > 0 {
					b.ReportMetric(float64(p.Microseconds())/1000, "ack_p99_ms")
				}
				b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "ack_p50_ms")
			})
		}
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}
