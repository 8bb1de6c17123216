package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// newClients makes n clients over the users, round-robin over the source
// addresses.
func (b *bench) newClients(n int) {
	b.clients = make([]*client, n)
	for i := range b.clients {
		node := nodeForClient(i, n, len(b.cfg.nodes), b.cfg.killNode-1, b.cfg.killClients)
		b.clients[i] = &client{b: b, idx: i, user: b.users[i%len(b.users)], src: i % len(b.wsDialers), node: node}
	}
}

// addRoom makes a room of the given clients; the first sends is how many of
// them (from the front) send, receive whether they sync it.
func (b *bench) addRoom(members []*client, sends int, receive bool) *room {
	r := &room{idx: len(b.rooms), owner: members[0].user}
	seen := map[*user]bool{}
	for i, c := range members {
		c.room, c.receive = r, receive
		if receive {
			r.members = append(r.members, c)
		}
		if i < sends {
			r.senders = append(r.senders, c)
		}
		if !seen[c.user] {
			seen[c.user] = true
			r.users = append(r.users, c.user)
		}
	}
	b.rooms = append(b.rooms, r)
	return r
}

// dropFailed removes clients that could not connect from their rooms, so
// that nothing is expected of them.
func (b *bench) dropFailed() {
	keep := func(cs []*client) []*client {
		out := cs[:0]
		for _, c := range cs {
			c.mu.Lock()
			ok := !c.failed
			c.mu.Unlock()
			if ok {
				out = append(out, c)
			}
		}
		return out
	}
	for _, r := range b.rooms {
		r.members = keep(r.members)
		r.senders = keep(r.senders)
	}
}

// prepare registers users, creates rooms and connects every client,
// returning the server sample taken before the first connection.
func (b *bench) prepare(ctx context.Context, res *result) (procSample, error) {
	if err := b.setupUsers(ctx); err != nil {
		return procSample{}, err
	}
	if err := b.createRooms(ctx); err != nil {
		return procSample{}, err
	}
	before := b.settledSample(ctx)
	if v, ok, err := b.serverVars(ctx); err != nil {
		res.Problems = append(res.Problems, "debug vars: "+err.Error())
	} else if ok {
		b.varsBaseline = &v
	}
	fmt.Fprintf(b.log, "connecting %d clients (%d at a time, from %d source addresses)\n", len(b.clients), b.cfg.connectConcurrency, len(b.wsDialers))
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, b.cfg.connectTimeout)
	failed := b.connectAll(cctx, b.clients, &b.stats.connect)
	timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	res.ConnectSeconds = round3(time.Since(start).Seconds())
	if timedOut {
		res.Problems = append(res.Problems, fmt.Sprintf("the connect phase stopped at -connect-timeout %s with %d of %d connected; the run went on with those",
			b.cfg.connectTimeout, len(b.clients)-failed, len(b.clients)))
	}
	res.ConnectFailed = failed
	res.Connect = b.stats.connect.summary()
	res.Connections = len(b.clients) - failed
	if err := ctx.Err(); err != nil {
		return before, err
	}
	if failed == len(b.clients) {
		return before, fmt.Errorf("no client could connect: %v", b.errorSummary())
	}
	b.dropFailed()
	return before, nil
}

// startRun starts what every scenario runs once its clients are connected:
// the reconnect workers, and the server sampler (stopped by stop).
func (b *bench) startRun(ctx context.Context) (smp *sampler, stop context.CancelFunc) {
	for w := 0; w < b.cfg.connectConcurrency; w++ {
		go b.reconnectWorker(b.connCtx)
	}
	smp = &sampler{pid: b.pidString()}
	b.smp = smp
	sctx, stop := context.WithCancel(ctx)
	go smp.run(sctx)
	return smp, stop
}

// runMessaging is fanout, rooms, reconnect, failover and commits: connect,
// send for warmup + duration (at the end of the warmup cutting every
// connection in the reconnect scenario, killing a node in failover),
// drain, and account.
func (b *bench) runMessaging(ctx context.Context, res *result) error {
	if _, err := b.prepare(ctx, res); err != nil {
		return err
	}
	smp, stopSampler := b.startRun(ctx)
	defer stopSampler()
	smp.sample()

	start := time.Now()
	from := start.Add(b.cfg.warmup)
	to := from.Add(b.cfg.duration)
	b.stats.series = newSeries(start, to.Sub(start)+b.cfg.drain+30*time.Second)
	b.stats.ackSeries = newSeries(start, to.Sub(start)+b.cfg.drain+30*time.Second)
	b.stats.measureFrom.Store(from.UnixNano())
	b.markNodesWindow()
	b.stats.measureTo.Store(to.UnixNano())
	fmt.Fprintf(b.log, "sending at %s for %s (+%s warm-up)\n", rateString(b.cfg.rate), b.cfg.duration, b.cfg.warmup)
	waitProfile := b.profileWindow(ctx, from, to)
	varsStart, _, _ := b.serverVars(ctx)
	pacers := b.startPacers(ctx, b.cfg.pacers, b.cfg.rate, 0, to)

	switch b.cfg.scenario {
	case "reconnect":
		if !sleepUntil(ctx, from) {
			return ctx.Err()
		}
		res.Reconnect = b.storm(ctx, to)
	case "failover":
		if !sleepUntil(ctx, from) {
			return ctx.Err()
		}
		res.Failover = b.failover(ctx, to)
	}
	pacers.Wait()
	sentAtEnd := b.stats.sent.Load()
	fmt.Fprintf(b.log, "draining (up to %s)\n", b.cfg.drain)
	res.DrainSeconds = round3(b.drain(ctx).Seconds())
	smp.sample()
	stopSampler()
	varsEnd, varsOK, err := b.serverVars(ctx)
	if err != nil {
		res.Problems = append(res.Problems, "debug vars: "+err.Error())
	}
	if res.Reconnect != nil && varsOK && b.varsCut != nil {
		res.Reconnect.GoroutinesBefore, res.Reconnect.GoroutinesAfter = b.varsCut.Goroutines, varsEnd.Goroutines
		res.Reconnect.HeapBeforeMiB = round1(float64(b.varsCut.HeapInuse) / (1 << 20))
		res.Reconnect.HeapAfterMiB = round1(float64(varsEnd.HeapInuse) / (1 << 20))
	}
	if err := waitProfile(); err != nil {
		res.Problems = append(res.Problems, "server profile: "+err.Error())
	}

	b.closeAll()
	d := account(b.rooms)
	res.Deliveries = &d
	secs := b.cfg.duration.Seconds()
	res.DeliveriesPerSec = round1(float64(b.stats.windowDeliveries.Load()) / secs)
	b.fillNodes(res, secs)
	res.CommitsPerSec = round1(float64(b.stats.windowAcks.Load()) / secs)
	res.OfferedRate = b.cfg.rate
	res.SentRate = round1(float64(sentAtEnd) / to.Sub(start).Seconds())
	res.Skipped = b.stats.skipped.Load()
	if b.stats.latency.count() > 0 {
		s := b.stats.latency.summary()
		res.Latency = &s
	}
	if b.stats.ack.count() > 0 {
		s := b.stats.ack.summary()
		res.Ack = &s
	}
	b.fillProc(res, smp, from, to)
	if varsOK && res.Server != nil && varsEnd.Writes > varsStart.Writes {
		res.Server.FramesPerWrite = round3(float64(varsEnd.Frames-varsStart.Frames) / float64(varsEnd.Writes-varsStart.Writes))
	}
	return nil
}

// storm cuts every connection at once (TCP closed, no close handshake),
// then reconnects them all through the reconnect workers (new tickets,
// resume=1, sync from the last id each saw, unacked messages resent), and
// measures how long until all are back and caught up.
func (b *bench) storm(ctx context.Context, until time.Time) *reconnectResult {
	if v, ok, err := b.serverVars(ctx); err == nil && ok {
		b.varsCut = &v
	}
	fmt.Fprintf(b.log, "cutting all %d connections\n", len(b.clients))
	cutStart := time.Now()
	before := b.stats.reconnected.Load()
	var wg sync.WaitGroup
	work := make(chan *client)
	for range 64 {
		wg.Go(func() {
			for c := range work {
				c.cutNow()
			}
		})
	}
	var live []*client
	for _, c := range b.clients {
		c.mu.Lock()
		ok := !c.failed
		c.mu.Unlock()
		if ok {
			live = append(live, c)
			work <- c
		}
	}
	close(work)
	wg.Wait()
	cutDone := time.Now()
	for _, c := range live {
		b.queueReconnect(c)
	}
	rr := &reconnectResult{Clients: len(live), CutSeconds: round3(cutDone.Sub(cutStart).Seconds())}
	// Wait until all are back, or the run's end (at least 60 s).
	limit := until
	if limit.Sub(cutDone) < 60*time.Second {
		limit = cutDone.Add(60 * time.Second)
	}
	for time.Now().Before(limit) && ctx.Err() == nil {
		if b.stats.reconnected.Load()-before+b.stats.reconnectFailed.Load() >= int64(len(live)) {
			break
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
	rr.Back = int(b.stats.reconnected.Load() - before)
	rr.Failed = int(b.stats.reconnectFailed.Load())
	var last time.Time
	for _, c := range live {
		c.mu.Lock()
		if c.backAt.After(cutStart) && c.backAt.After(last) {
			last = c.backAt
		}
		c.mu.Unlock()
	}
	if !last.IsZero() {
		rr.AllBackSeconds = round3(last.Sub(cutStart).Seconds())
	}
	rr.PerClient = b.stats.reconnect.summary()
	rr.Jitter = b.cfg.reconnectJitter.Seconds()
	fmt.Fprintf(b.log, "  %d/%d back and synced %.2f s after the cut\n", rr.Back, rr.Clients, rr.AllBackSeconds)
	return rr
}

// runIdle opens the connections and holds them, sampling the server.
func (b *bench) runIdle(ctx context.Context, res *result) error {
	before, err := b.prepare(ctx, res)
	if err != nil {
		return err
	}
	smp, stopSampler := b.startRun(ctx)
	defer stopSampler()
	// Let the presence announcements of the last connections settle.
	sleepCtx(ctx, 3*time.Second)
	smp.sample()
	after, _ := b.serverSample()
	start := time.Now()
	b.stats.series = newSeries(start, b.cfg.duration+time.Minute)
	b.stats.ackSeries = newSeries(start, b.cfg.duration+time.Minute)
	fmt.Fprintf(b.log, "holding %d connections for %s\n", res.Connections, b.cfg.duration)
	sleepUntil(ctx, start.Add(b.cfg.duration))
	smp.sample()
	end, _ := b.serverSample()
	stopSampler()
	b.fillProc(res, smp, start, time.Now())
	if v, ok, err := b.serverVars(ctx); err != nil {
		res.Problems = append(res.Problems, "debug vars: "+err.Error())
	} else if ok && b.varsBaseline != nil && res.Server != nil {
		varsPerConn(res.Server, *b.varsBaseline, v)
	}
	if b.cfg.serverProfile != "" {
		if err := b.saveServerProfile(ctx, "heap", ""); err != nil {
			res.Problems = append(res.Problems, "server heap profile: "+err.Error())
		}
	}
	if res.Server != nil && res.Connections > 0 {
		srv := res.Server
		srv.RSSBeforeKiB = before.rssKiB
		srv.RSSAfterKiB = after.rssKiB
		srv.RSSEndKiB = end.rssKiB
		srv.RSSPerConnKiB = round3(float64(after.rssKiB-before.rssKiB) / float64(res.Connections))
		srv.RSSPerConnEndKiB = round3(float64(end.rssKiB-before.rssKiB) / float64(res.Connections))
		srv.ThreadsBefore, srv.ThreadsAfter = before.threads, end.threads
		srv.FDs = end.fds
		if b.loggedIn > 0 || after.rssKiB < before.rssKiB {
			res.Notes = append(res.Notes, fmt.Sprintf("%d users logged in just before (argon2, 19 MiB a hash): the RSS baseline holds their garbage, "+
				"which the server may return to the OS while the connections open, understating RSS per connection; "+
				"for a clean figure run idle on a freshly started server with a -token-file from an earlier run", b.loggedIn))
		}
	}
	if b.cfg.goroutineDump != "" && b.cfg.serverPID > 0 {
		fmt.Fprintf(b.log, "SIGQUIT to the server (-goroutine-dump) to count its goroutines; this ends it\n")
		b.ending.Store(true) // the connections are about to drop: no reconnects
		total, hub, err := dumpGoroutines(b.cfg.serverPID, b.cfg.goroutineDump)
		if err != nil {
			res.Problems = append(res.Problems, "goroutine dump: "+err.Error())
		} else if res.Server != nil {
			res.Server.Goroutines = &total
			res.Server.HubGoroutines = &hub
			res.Server.GoroutinesPerConn = round3(float64(hub) / float64(res.Connections))
		}
	}
	b.closeAll()
	return nil
}

// runHistory fills one room with -messages messages from -senders
// connections (which do not sync the room, so nothing is fanned out: a pure
// commit load), then times history pages: the newest, the oldest and
// random ones. With -settle, it times them right after the fill too, then
// waits for the machine to go quiet before the measured pages.
func (b *bench) runHistory(ctx context.Context, res *result) error {
	if _, err := b.prepare(ctx, res); err != nil {
		return err
	}
	r := b.rooms[0]
	smp, stopSampler := b.startRun(ctx)
	defer stopSampler()
	smp.sample()
	start := time.Now()
	b.stats.series = newSeries(start, b.cfg.duration+b.cfg.drain+30*time.Second)
	b.stats.ackSeries = newSeries(start, b.cfg.duration+b.cfg.drain+30*time.Second)
	b.stats.measureFrom.Store(start.UnixNano())
	b.stats.measureTo.Store(start.Add(b.cfg.duration).UnixNano())
	fmt.Fprintf(b.log, "filling room %s with %d messages (%s, at most %s)\n", r.name, b.cfg.messages, rateString(b.cfg.rate), b.cfg.duration)
	b.startPacers(ctx, b.cfg.pacers, b.cfg.rate, int64(b.cfg.messages), start.Add(b.cfg.duration)).Wait()
	b.drain(ctx)
	fill := time.Since(start)
	smp.sample()
	stopSampler()
	b.fillProc(res, smp, start, time.Now())
	res.SentRate = round1(float64(b.stats.sent.Load()) / fill.Seconds())
	h := &historyResult{Messages: b.stats.acked.Load(), FillSeconds: round3(fill.Seconds())}
	h.FillRate = round1(float64(h.Messages) / fill.Seconds())
	res.CommitsPerSec = h.FillRate
	if b.stats.ack.count() > 0 {
		s := b.stats.ack.summary()
		res.Ack = &s
	}
	res.History = h
	b.closeAll()
	d := account(b.rooms)
	res.Deliveries = &d

	r.mu.Lock()
	first, last := r.firstID, r.lastID
	r.mu.Unlock()
	if h.Messages < int64(b.cfg.pageSize)*2 || first == 0 {
		return fmt.Errorf("only %d messages were committed; too few to page", h.Messages)
	}
	tok, err := b.token(ctx, r.owner)
	if err != nil {
		return err
	}
	if b.cfg.settle > 0 {
		// First the pages right after the fill, for the record; then the
		// measured ones on a quiet machine.
		fmt.Fprintf(b.log, "timing %d history pages of each kind right after the fill (limit %d, ids %d..%d)\n", b.cfg.queries, b.cfg.pageSize, first, last)
		// (Other random pages than the measured ones, which must not find
		// these in a cache.)
		after := b.timePages(ctx, tok, r.id, first, last, 11, h)
		h.AfterFill = &after
		fmt.Fprintf(b.log, "waiting for the machine to go quiet (at most %s)\n", b.cfg.settle)
		took, ok, err := settle(ctx, b.cfg.settle)
		if err != nil {
			// The pages are timed anyway, and the report says the machine
			// was not known to be quiet.
			res.Problems = append(res.Problems, "waiting for the machine to go quiet: "+err.Error())
		}
		h.SettleSeconds, h.Settled = round3(took.Seconds()), ok
	}
	fmt.Fprintf(b.log, "timing %d history pages of each kind (limit %d, ids %d..%d)\n", b.cfg.queries, b.cfg.pageSize, first, last)
	// The server's CPU profile covers these pages, not the fill: a window
	// of about 2 ms a page (the profile ends on its own, whatever the pages
	// take; idle time in it adds no samples).
	from := time.Now()
	waitProfile := b.profileWindow(ctx, from, from.Add(max(5*time.Second, time.Duration(3*b.cfg.queries)*2*time.Millisecond)))
	h.pageTimes = b.timePages(ctx, tok, r.id, first, last, 7, h)
	h.PageSize = b.cfg.pageSize
	if err := waitProfile(); err != nil {
		res.Problems = append(res.Problems, "server profile: "+err.Error())
	}
	// Cut short (the deadline, a signal): the pages are not all timed.
	return ctx.Err()
}

// timePages times -queries pages of each kind, the newest, the oldest and
// one at a random point, in turn; failures and wrong pages are counted in h.
func (b *bench) timePages(ctx context.Context, tok string, chatID, first, last int64, seed uint64, h *historyResult) pageTimes {
	newest, oldest, random := new(hist), new(hist), new(hist)
	rng := rand.New(rand.NewPCG(seed, seed))
	size := int64(b.cfg.pageSize)
	for i := 0; i < b.cfg.queries && ctx.Err() == nil; i++ {
		for kind, hh := range []*hist{newest, oldest, random} {
			var before int64
			switch kind {
			case 1:
				before = first + size
			case 2:
				before = first + size + rng.Int64N(last-first-size+1)
			}
			page, took, err := b.api.messages(ctx, tok, chatID, before, b.cfg.pageSize)
			if err != nil {
				h.Errors++
				b.noteError("history", err)
				continue
			}
			hh.record(took)
			if !pageOK(page, before, b.cfg.pageSize) {
				h.BadPages++
			}
		}
	}
	return pageTimes{Newest: newest.summary(), Oldest: oldest.summary(), Random: random.summary()}
}

// pageOK checks a history page: full, ascending, and before the cursor.
func pageOK(p historyPage, before int64, size int) bool {
	if len(p.Messages) != size {
		return false
	}
	for i, m := range p.Messages {
		if (before > 0 && m.ID >= before) || (i > 0 && m.ID <= p.Messages[i-1].ID) {
			return false
		}
	}
	return true
}

func (b *bench) pidString() string {
	if b.cfg.serverPID <= 0 {
		return ""
	}
	return strconv.Itoa(b.cfg.serverPID)
}

// settledSample waits (up to 20 s) until the server's RSS has stopped
// falling, so that memory freed after the logins' argon2 hashing is not
// counted against the connections, and returns that sample.
func (b *bench) settledSample(ctx context.Context) procSample {
	s, err := b.serverSample()
	if err != nil {
		return s
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && sleepCtx(ctx, time.Second) {
		next, err := b.serverSample()
		if err != nil {
			return s
		}
		settled := next.rssKiB >= s.rssKiB-s.rssKiB/100
		s = next
		if settled {
			break
		}
	}
	return s
}

func (b *bench) serverSample() (procSample, error) {
	if b.cfg.serverPID <= 0 {
		return procSample{}, fmt.Errorf("no -server-pid")
	}
	return readProc(b.pidString())
}

// fillProc reports the server's and the tool's memory and CPU over a window.
func (b *bench) fillProc(res *result, smp *sampler, from, to time.Time) {
	smp.mu.Lock()
	defer smp.mu.Unlock()
	if a, z, ok := between(smp.tool, from.Add(-time.Second), to.Add(time.Second)); ok {
		res.Tool.CPUPercent = round1(cpuPercent(a, z))
		res.Tool.RSSKiB = z.rssKiB
	}
	if smp.pid == "" {
		res.Notes = append(res.Notes, "no -server-pid: server memory and CPU not sampled")
		return
	}
	srv := &serverResult{PID: b.cfg.serverPID, RSSMaxKiB: smp.maxRSS}
	if a, z, ok := between(smp.server, from.Add(-time.Second), to.Add(time.Second)); ok {
		srv.CPUPercent = round1(cpuPercent(a, z))
		srv.RSSEndKiB = z.rssKiB
		srv.ThreadsAfter = z.threads
		srv.FDs = z.fds
	}
	if smp.lastErr != nil {
		res.Problems = append(res.Problems, "sampling the server: "+smp.lastErr.Error())
	}
	res.Server = srv
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	return sleepCtx(ctx, time.Until(t))
}

func rateString(rate float64) string {
	if rate <= 0 {
		return "as fast as the in-flight limit allows"
	}
	return fmt.Sprintf("%g msgs/s", rate)
}
