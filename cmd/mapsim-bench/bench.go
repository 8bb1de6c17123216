package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// serverEnvHint is what the server under test needs so that its per-user
// and per-address limits do not stand in for its capacity.
const serverEnvHint = "RATE_LIMIT_MESSAGES_PER_SECOND=100000 RATE_LIMIT_MESSAGES_BURST=100000 " +
	"RATE_LIMIT_FRAMES_PER_SECOND=100000 RATE_LIMIT_FRAMES_BURST=100000 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTIONS_PER_USER=0 " +
	"REGISTRATION_PER_HOUR=0"

// bench is one scenario run.
type bench struct {
	cfg       config
	log       io.Writer
	api       *api
	wsDialers []*net.Dialer // one per source address, for WebSockets

	// The server's /debug/vars before the connections opened, and just
	// before a reconnect storm's cut (with -debug-url).
	varsBaseline, varsCut *debugVars
	run                   string // this run's id, in every text and client id

	users   []*user
	clients []*client
	nodes   *nodeStats // with several -url; nil with one
	nodeAPI []*api     // each node's API (tickets are asked of the node a client connects to)
	// dead marks the nodes the failover scenario killed; reconnects go
	// round-robin (nextNode) to the others.
	dead     []atomic.Bool
	nextNode atomic.Int64
	rooms    []*room
	stats    *stats
	smp      *sampler // the scenario's samples of the server, for the plot
	// loggedIn is how many users this run had to log in (argon2 on the
	// server just before the connections: garbage in the RSS baseline).
	loggedIn int

	connCtx    context.Context // the life of every connection
	readers    sync.WaitGroup
	reconnects chan *client
	ending     atomic.Bool

	warnedTooMany, warnedConnCap atomic.Bool
	errMu                        sync.Mutex
	errSamples                   map[string]string // first error of each kind
	errCounts                    map[string]int
}

// stats are the counters of a run, updated by every reader.
type stats struct {
	measureFrom, measureTo atomic.Int64 // Unix nanoseconds of the measured window

	latency, ack, connect, reconnect hist
	series, ackSeries                *series // per second of the run, for the plot

	sent, acked, rejected, dupAcks, resent, writeErrors  atomic.Int64
	skipped                                              atomic.Int64 // due but no sender could take it
	expected, unique, foreign                            atomic.Int64
	windowDeliveries, windowAcks                         atomic.Int64
	drops, reconnected, reconnectErrors, reconnectFailed atomic.Int64

	mu     sync.Mutex
	errors map[string]int64
	closes map[string]int64
	frames map[string]int64
}

func newStats() *stats {
	s := &stats{errors: map[string]int64{}, closes: map[string]int64{}, frames: map[string]int64{}}
	s.measureFrom.Store(1<<63 - 1)
	s.measureTo.Store(1<<63 - 1)
	return s
}

func (s *stats) countError(code string) {
	s.mu.Lock()
	s.errors[code]++
	s.mu.Unlock()
}

func (s *stats) countFrame(typ string) {
	s.mu.Lock()
	s.frames[typ]++
	s.mu.Unlock()
}

func (s *stats) countClose(code websocket.StatusCode, err error) {
	key := "no close frame"
	if code != -1 {
		key = fmt.Sprintf("%d %s", int(code), code)
	} else if errors.Is(err, context.Canceled) {
		key = "canceled"
	}
	s.mu.Lock()
	s.closes[key]++
	s.mu.Unlock()
}

func copyCounts(mu *sync.Mutex, m map[string]int64) map[string]int64 {
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// noteError keeps a count and the first example of each kind of error.
func (b *bench) noteError(kind string, err error) {
	msg := err.Error()
	key := kind + ": " + firstWords(msg, 6)
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if b.errCounts == nil {
		b.errCounts, b.errSamples = map[string]int{}, map[string]string{}
	}
	if b.errCounts[key] == 0 {
		b.errSamples[key] = msg
		fmt.Fprintf(b.log, "  %s error: %s\n", kind, msg)
	}
	b.errCounts[key]++
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

func (b *bench) errorSummary() []string {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	var out []string
	for k, n := range b.errCounts {
		out = append(out, fmt.Sprintf("%d× %s", n, b.errSamples[k]))
	}
	sort.Strings(out)
	return out
}

func (b *bench) warnOnce(flag *atomic.Bool, msg string) {
	if flag.CompareAndSwap(false, true) {
		fmt.Fprintln(b.log, "WARNING:", msg)
	}
}

// pacer sends messages into its rooms at a steady rate: a ticker, no timer
// or goroutine per message. Each tick sends what is due since the start;
// a message that no sender of the next room can take (all down, or at
// their in-flight limit) is skipped and counted, so the report shows when
// the server did not keep up with the offered rate.
type pacer struct {
	b     *bench
	rooms []*room
	rate  float64 // messages per second; 0: as fast as the in-flight limit allows
	limit int64   // stop once the run has sent this many (0: no limit)
	next  int
	// window is the most a closed-loop tick sends: every sender's in-flight
	// window, refilled.
	window int
}

// maxCatchUp bounds how far behind schedule a pacer may fall before it
// drops the backlog: a quarter of a second of messages.
const maxCatchUp = 0.25

func (p *pacer) run(ctx context.Context, until time.Time) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var due, done float64
	buf := make([]byte, 0, 512)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if !now.Before(until) || (p.limit > 0 && p.b.stats.sent.Load() >= p.limit) {
				return
			}
			if p.rate > 0 {
				due = p.rate * now.Sub(start).Seconds()
				if due-done > p.rate*maxCatchUp+1 {
					behind := int64(due - done - p.rate*maxCatchUp)
					p.b.stats.skipped.Add(behind)
					done += float64(behind)
				}
				for done+1 <= due {
					done++
					var ok bool
					buf, ok = p.sendOne(buf)
					if !ok {
						p.b.stats.skipped.Add(1)
					}
				}
			} else {
				// Closed loop: every sender keeps its in-flight window full.
				for range p.window {
					if p.limit > 0 && p.b.stats.sent.Load() >= p.limit {
						break
					}
					var ok bool
					if buf, ok = p.sendOne(buf); !ok {
						break
					}
				}
			}
		}
	}
}

// sendOne sends a message into the next room from the next sender that can
// take one.
func (p *pacer) sendOne(buf []byte) ([]byte, bool) {
	for range len(p.rooms) {
		r := p.rooms[p.next]
		p.next = (p.next + 1) % len(p.rooms)
		for range len(r.senders) {
			c := r.senders[r.rr]
			r.rr = (r.rr + 1) % len(r.senders)
			var ok bool
			if buf, ok = c.trySend(buf); ok {
				return buf, true
			}
		}
		if p.rate > 0 {
			return buf, false // paced: this message is skipped, not moved to another room
		}
	}
	return buf, false
}

// startPacers splits the rooms over n pacers, each with its share of rate.
func (b *bench) startPacers(ctx context.Context, n int, rate float64, limit int64, until time.Time) *sync.WaitGroup {
	var senders []*room
	for _, r := range b.rooms {
		if len(r.senders) > 0 {
			senders = append(senders, r)
		}
	}
	n = max(1, min(n, len(senders)))
	var pacers, all sync.WaitGroup
	for i := range n {
		p := &pacer{b: b, rate: rate / float64(n), limit: limit}
		for j := i; j < len(senders); j += n {
			p.rooms = append(p.rooms, senders[j])
			p.window += len(senders[j].senders) * b.cfg.inflight
		}
		pacers.Go(func() { p.run(ctx, until) })
	}
	stop := make(chan struct{})
	all.Go(func() { watchWrites(senders, stop, sendTimeout, time.Second) })
	all.Go(func() { pacers.Wait(); close(stop) })
	return &all
}

// sendTimeout is how long a sender's write may hang before the watchdog
// closes its connection (the reader then reconnects it, and the message is
// resent from pending).
const sendTimeout = 10 * time.Second

// watchWrites is the pacers' watchdog: every period until stop it closes
// the connection of any sender whose write began more than timeout ago,
// which ends the write with an error. One goroutine for every sender, not
// a timer for every message.
func watchWrites(rooms []*room, stop <-chan struct{}, timeout, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, r := range rooms {
				for _, c := range r.senders {
					if since := c.writeSince.Load(); since != 0 && now.UnixNano()-since > int64(timeout) {
						c.mu.Lock()
						ws := c.ws
						c.mu.Unlock()
						if ws != nil {
							ws.CloseNow()
						}
					}
				}
			}
		}
	}
}

// drain waits, up to the drain time, until every message sent has been
// acked or refused and every expected delivery has arrived.
func (b *bench) drain(ctx context.Context) time.Duration {
	start := time.Now()
	deadline := start.Add(b.cfg.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s := b.stats
		settled := s.sent.Load() <= s.acked.Load()+s.rejected.Load()
		if settled && s.unique.Load() >= s.expected.Load() && len(b.reconnects) == 0 {
			break
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return time.Since(start)
}

// closeAll ends every connection (normal close, bounded) and waits for the
// readers.
func (b *bench) closeAll() {
	b.ending.Store(true)
	var wg sync.WaitGroup
	work := make(chan *client)
	for range min(256, max(1, len(b.clients))) {
		wg.Go(func() {
			for c := range work {
				c.closeGently()
			}
		})
	}
	deadline := time.After(30 * time.Second)
	for _, c := range b.clients {
		select {
		case work <- c:
		case <-deadline:
			// Too slow: drop the rest at once.
			close(work)
			wg.Wait()
			for _, c := range b.clients {
				c.cutNow()
			}
			b.readers.Wait()
			return
		}
	}
	close(work)
	wg.Wait()
	b.readers.Wait()
}
