package main

import (
	"fmt"
	"net/url"
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
				elapsed, latencies := timeSplit(b, senders, func(w, j int) (time.Duration, bool) {
					c, sent := clients[w], time.Now()
					c.send(map[string]any{"type": "text", "text": "benchmark message of a typical length, about eighty bytes long.", "client_id": fmt.Sprintf("b%d-%d", w, j)})
					c.nextType("ack")
					return time.Since(sent), true
				})
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				if p := percentile(latencies, 0.99); p > 0 {
					b.ReportMetric(float64(p.Microseconds())/1000, "ack_p99_ms")
				}
				b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "ack_p50_ms")
			})
		}
	}
}

// timeSplit runs b.N operations on workers goroutines, worker w doing its
// share in order (op(w, 0), op(w, 1), …), and returns how long they took in
// all and each one's latency as op measured it. An op that returns false
// stops its worker (having said why with b.Error).
func timeSplit(b *testing.B, workers int, op func(w, i int) (time.Duration, bool)) (time.Duration, []time.Duration) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]time.Duration, 0, n)
			for i := range n {
				took, ok := op(w, i)
				if !ok {
					break
				}
				own = append(own, took)
			}
			mu.Lock()
			latencies = append(latencies, own...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	return elapsed, latencies
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// BenchmarkReconnect measures what a reconnect storm costs the server a
// client: a ticket over the API, the WebSocket handshake with resume=1, the
// hello, and a sync from the last message seen to "synced", with messages
// committed meanwhile (so SQLite's readers start from a cold page cache, as
// they do under load). It reports reconnects per second and their p99.
//
//	go test -run '^$' -bench Reconnect -benchtime 2000x ./cmd/mapsim-chat/
func BenchmarkReconnect(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			const workers = 32
			env := withoutRateLimits(baseEnv(b, be.env(b)))
			env["MAX_CONNECTIONS_PER_IP"] = "0"
			srv := MustStart(b, env)
			tokens := make([]string, workers)
			for i := range tokens {
				tokens[i] = srv.MustUser(b, fmt.Sprintf("recon%d", i))
			}
			// One sender commits into global throughout, bounded in count.
			sender := srv.MustDial(b, srv.MustUser(b, "talker"), "global")
			sender.nextType("hello")
			go func() { // its acks and echoes are not needed; keep its reader going
				for range sender.frames {
				}
			}()
			stop := make(chan struct{})
			talked := make(chan struct{})
			go func() {
				defer close(talked)
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < 100_000; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					sender.send(map[string]any{"type": "text", "text": "background traffic while clients reconnect", "client_id": fmt.Sprintf("t%d", i)})
				}
			}()
			last := make([]int64, workers) // each worker's newest message seen
			elapsed, latencies := timeSplit(b, workers, func(w, _ int) (time.Duration, bool) {
				began := time.Now()
				r := srv.call(b, "POST", "/ws-ticket/", tokens[w], nil)
				c, err := srv.dial(b, "resume=1&ticket="+url.QueryEscape(r.str("ticket")), nil)
				if err != nil {
					b.Errorf("dial: %v", err)
					return 0, false
				}
				c.nextType("hello")
				c.send(map[string]any{"type": "sync", "chat_name": "global", "after_id": last[w]})
				last[w] = num(c.nextType("synced"), "last_id")
				took := time.Since(began)
				c.conn.CloseNow()
				return took, true
			})
			close(stop)
			<-talked
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reconnects/s")
			b.ReportMetric(float64(percentile(latencies, 0.99).Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "p50_ms")
		})
	}
}
