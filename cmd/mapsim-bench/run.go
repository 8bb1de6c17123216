package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const usage = `usage: mapsim-bench -url http://127.0.0.1:PORT -scenario NAME [flags]
       mapsim-bench report [-title T] FILE.jsonl...   (Markdown tables with the targets)

Scenarios:
  idle       open -clients connections and hold them for -duration; connect times, server RSS per connection
  fanout     one room of -clients members; -senders of them send -rate msgs/s in all
  rooms      rooms of -room-size (such as 5-10) members; -rate msgs/s spread over the rooms
  reconnect  rooms as above with messages flowing; after -warmup every connection is cut at once,
             all reconnect (new ticket, resume=1, sync from the last id seen, unacked messages resent)
  failover   rooms as above over several -url, -kill-clients of them on the -kill-node; after -warmup
             the tool sends SIGKILL to -kill-pid (that node's process) and its clients reconnect
             round-robin to the other nodes: time until all are back, and until all hold every
             message acknowledged before the kill
  commits    -senders connections, each alone in its own room and not syncing it (nothing is fanned
             out): commits/s and ack latency at -rate (0: as fast as -inflight allows)
  history    fill one room with -messages from -senders connections, then time GET /messages/
             pages (newest, oldest, random) -queries times each: right after the fill, and again
             once the machine is quiet (-settle), which are the measured ones

The server under test must not rate-limit the load; start it with
  ` + serverEnvHint + `
Only loopback is used: -url and -source-addrs must be 127.x.y.z.

Flags:
`

// config is a run's settings, checked once.
type config struct {
	url                *url.URL   // the first node: setup and the API
	nodes              []*url.URL // every -url; clients connect round-robin
	redisAddr          string
	scenario           string
	label              string
	clients, users     int
	roomMin, roomMax   int
	rate               float64
	duration, warmup   time.Duration
	drain, timeout     time.Duration
	senders, inflight  int
	pacers             int
	msgBytes           int
	sources            []netip.Addr
	jsonPath, svgPath  string
	serverPID          int
	password, prefix   string
	tokenFile          string
	connectConcurrency int
	setupConcurrency   int
	messages, queries  int
	pageSize           int
	settle             time.Duration
	reconnectJitter    time.Duration
	connectTimeout     time.Duration
	goroutineDump      string
	cpuProfile         string
	debugURL           *url.URL // the server's DEBUG_ADDR listener, or nil
	serverProfile      string
	killPID            int // failover: the process of the killed node
	killNode           int // failover: 1-based index of -url; 0 elsewhere
	killClients        int // failover: clients on the killed node (0: its round-robin share)
}

var scenarios = []string{"idle", "fanout", "rooms", "reconnect", "failover", "commits", "history"}

// run is the whole program behind main.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "report" {
		return runReport(args[2:], stdout)
	}
	cfg, err := parseFlags(args[1:], stderr)
	if err != nil {
		return err
	}
	return runScenario(ctx, cfg, stdout, stderr)
}

// urlList is a repeatable -url.
type urlList []string

func (l *urlList) String() string     { return strings.Join(*l, ",") }
func (l *urlList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("mapsim-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		cfg                config
		roomSize, srcAddrs string
	)
	var rawURLs urlList
	fs.Var(&rawURLs, "url", "the server: http://127.x.y.z:PORT only (default http://127.0.0.1:8000); repeat it for several nodes of one installation, and the clients are spread over them round-robin")
	fs.StringVar(&cfg.redisAddr, "redis-addr", "", "with several nodes: their Redis, host:port on loopback, to report its CPU over the measured time (INFO)")
	fs.StringVar(&cfg.scenario, "scenario", "", strings.Join(scenarios, "|"))
	fs.StringVar(&cfg.label, "label", "", "a name for this server in the output, such as sqlite or mariadb")
	fs.IntVar(&cfg.clients, "clients", 100, "WebSocket connections (fanout: the room's size; commits, history: ignored, see -senders)")
	fs.IntVar(&cfg.users, "users", 0, "distinct users (0: one per connection); fewer users than clients means several connections per user")
	fs.StringVar(&roomSize, "room-size", "5-10", "members per room, N or MIN-MAX (rooms, reconnect)")
	fs.Float64Var(&cfg.rate, "rate", 100, "messages per second in all (0: closed loop, as fast as -inflight allows; the default for commits and history)")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "measured time (history: the bound on the fill, default 30m)")
	fs.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "sending before the measured time (reconnect: before the cut)")
	fs.DurationVar(&cfg.drain, "drain", 15*time.Second, "after sending, how long to wait for outstanding acks and deliveries")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "hard deadline for the whole scenario, setup included (0: 10 min + 100 ms per user + the run)")
	fs.IntVar(&cfg.senders, "senders", 0, "connections that send (fanout: default 4; commits and history: default 64); rooms and reconnect: every member")
	fs.IntVar(&cfg.inflight, "inflight", 4, "unacked messages allowed per sending connection")
	fs.IntVar(&cfg.pacers, "pacers", 4, "sending goroutines (each a ticker loop over its share of the rooms)")
	fs.IntVar(&cfg.msgBytes, "msg-bytes", 80, "message text length in bytes (at least the timestamp and ids)")
	fs.StringVar(&srcAddrs, "source-addrs", "127.0.0.1-127.0.0.8", "local addresses to connect from, round-robin: list and ranges of 127.x.y.z")
	fs.StringVar(&cfg.jsonPath, "json", "", "append the result as one JSON line to this file")
	fs.StringVar(&cfg.svgPath, "svg", "", "write a latency plot (SVG) to this file")
	fs.IntVar(&cfg.serverPID, "server-pid", 0, "the server's process id, to sample its RSS, threads and CPU from /proc")
	fs.StringVar(&cfg.password, "password", "mapsim-bench-Pw-7d1c", "password of the benchmark users")
	fs.StringVar(&cfg.prefix, "prefix", "bench", "username prefix: users are <prefix>00000… and are reused across runs")
	fs.StringVar(&cfg.tokenFile, "token-file", "", "keep access tokens here between runs against the same server (mode 0600; bench/out/ is git-ignored)")
	fs.IntVar(&cfg.connectConcurrency, "connect-concurrency", 64, "connections opened at a time (also the reconnect workers)")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 20*time.Minute, "bound on opening all connections; the run goes on with those open by then")
	fs.IntVar(&cfg.setupConcurrency, "setup-concurrency", 8, "registrations and logins at a time")
	fs.IntVar(&cfg.messages, "messages", 100000, "history: messages to fill the room with")
	fs.IntVar(&cfg.queries, "queries", 200, "history: pages timed of each kind")
	fs.IntVar(&cfg.pageSize, "page-size", 50, "history: messages per page (1-200)")
	fs.DurationVar(&cfg.settle, "settle", 2*time.Minute, "history: after timing pages right after the fill, wait at most this long for the machine to go quiet (CPU, dirty pages) before the measured pages (0: time them once, right after the fill)")
	fs.DurationVar(&cfg.reconnectJitter, "reconnect-jitter", time.Second, "a reconnecting client first waits a random time up to this (real clients back off 1 s with jitter)")
	fs.StringVar(&cfg.goroutineDump, "goroutine-dump", "", "idle: at the end, SIGQUIT the -server-pid (this ENDS it) and count goroutines in its log, this file")
	fs.IntVar(&cfg.killPID, "kill-pid", 0, "failover: the process id of the node to kill (SIGKILL) after -warmup")
	fs.IntVar(&cfg.killNode, "kill-node", 0, "failover: which -url is that node, 2 to the number of -url (default the last; the first serves the tool's setup)")
	fs.IntVar(&cfg.killClients, "kill-clients", 0, "failover: clients on the killed node, the rest spread over the others (0: an even share)")
	var debugURL string
	fs.StringVar(&debugURL, "debug-url", "", "the server's DEBUG_ADDR listener (http://127.0.0.1:PORT): goroutines and heap per connection from /debug/vars (idle, reconnect), and -server-profile")
	fs.StringVar(&cfg.serverProfile, "server-profile", "", "with -debug-url: write the server's CPU profile over the measured time (idle: its heap profile at the end) here")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile here (to see what the load costs the tool)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.scenario == "commits" || cfg.scenario == "history" {
		// Their natural load is a closed loop; history's fill is bounded by
		// -messages, so its time bound is generous.
		if !set["rate"] {
			cfg.rate = 0
		}
		if cfg.scenario == "history" && !set["duration"] {
			cfg.duration = 30 * time.Minute
		}
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	var err error
	if len(rawURLs) == 0 {
		rawURLs = urlList{"http://127.0.0.1:8000"}
	}
	for _, raw := range rawURLs {
		u, err := checkURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg.nodes = append(cfg.nodes, u)
	}
	if len(cfg.nodes) > 0 {
		cfg.url = cfg.nodes[0]
	}
	if cfg.sources, err = parseSourceAddrs(srcAddrs); err != nil {
		errs = append(errs, err)
	}
	known := false
	for _, s := range scenarios {
		known = known || s == cfg.scenario
	}
	if !known {
		bad("-scenario must be one of %s", strings.Join(scenarios, ", "))
	}
	if cfg.roomMin, cfg.roomMax, err = parseRange(roomSize); err != nil {
		bad("-room-size %q: %v", roomSize, err)
	}
	switch cfg.scenario {
	case "fanout":
		cfg.senders = cmpOrInt(cfg.senders, 4)
		cfg.roomMin, cfg.roomMax = cfg.clients, cfg.clients
		if cfg.senders > cfg.clients {
			bad("-senders %d is more than -clients %d", cfg.senders, cfg.clients)
		}
	case "commits", "history":
		cfg.senders = cmpOrInt(cfg.senders, 64)
		cfg.clients = cfg.senders
		if cfg.scenario == "history" {
			cfg.warmup = 0 // the fill is measured whole
		}
	}
	if cfg.users == 0 {
		cfg.users = cfg.clients
	}
	switch {
	case cfg.clients < 1 || cfg.clients > 200000:
		bad("-clients must be 1 to 200000")
	case cfg.users < 1 || cfg.users > cfg.clients:
		bad("-users must be 1 to -clients (%d)", cfg.clients)
	}
	if cfg.settle < 0 || cfg.settle > 30*time.Minute {
		bad("-settle must be 0 to 30m")
	}
	if cfg.rate < 0 || cfg.rate > 1e6 {
		bad("-rate must be 0 to 1000000")
	}
	if cfg.rate == 0 && (cfg.scenario == "fanout" || cfg.scenario == "rooms" || cfg.scenario == "reconnect" || cfg.scenario == "failover") {
		bad("-rate 0 (closed loop) is only for commits and history; fanout, rooms, reconnect and failover need a rate")
	}
	if cfg.scenario == "failover" {
		if cfg.killNode == 0 {
			cfg.killNode = len(cfg.nodes)
		}
		switch {
		case len(cfg.nodes) < 2:
			bad("-scenario failover needs at least two -url (nodes of one installation)")
		case cfg.killNode < 2 || cfg.killNode > len(cfg.nodes):
			bad("-kill-node must be 2 to %d (the first -url serves the tool's setup)", len(cfg.nodes))
		}
		if cfg.killPID <= 1 || cfg.killPID == os.Getpid() {
			bad("-scenario failover needs -kill-pid, the process id of the node to kill")
		}
		if cfg.killClients < 0 || cfg.killClients >= cfg.clients {
			bad("-kill-clients must be 0 to fewer than -clients (%d): the other nodes need some", cfg.clients)
		}
	} else if cfg.killPID != 0 || cfg.killNode != 0 || cfg.killClients != 0 {
		bad("-kill-pid, -kill-node and -kill-clients are for -scenario failover")
	}
	if cfg.duration <= 0 || cfg.duration > 2*time.Hour || cfg.warmup < 0 || cfg.warmup > 10*time.Minute || cfg.drain < 0 || cfg.drain > 10*time.Minute {
		bad("-duration must be up to 2h, -warmup and -drain up to 10m")
	}
	if cfg.inflight < 1 || cfg.inflight > 1000 || cfg.pacers < 1 || cfg.pacers > 256 {
		bad("-inflight must be 1 to 1000, -pacers 1 to 256")
	}
	if cfg.msgBytes < 1 || cfg.msgBytes > 8000 {
		bad("-msg-bytes must be 1 to 8000")
	}
	if cfg.connectConcurrency < 1 || cfg.connectConcurrency > 4096 || cfg.setupConcurrency < 1 || cfg.setupConcurrency > 256 {
		bad("-connect-concurrency must be 1 to 4096, -setup-concurrency 1 to 256")
	}
	if cfg.messages < 1 || cfg.messages > 100_000_000 || cfg.queries < 1 || cfg.queries > 1_000_000 || cfg.pageSize < 1 || cfg.pageSize > 200 {
		bad("-messages must be 1 to 100000000, -queries 1 to 1000000, -page-size 1 to 200")
	}
	if len(cfg.password) < 8 {
		bad("-password must be at least 8 characters")
	}
	if n := len(cfg.prefix); n < 1 || n > 27 {
		bad("-prefix must be 1 to 27 characters (usernames are the prefix and 5 digits)")
	}
	if cfg.goroutineDump != "" && (cfg.scenario != "idle" || cfg.serverPID <= 0) {
		bad("-goroutine-dump works with -scenario idle and -server-pid")
	}
	if cfg.connectTimeout <= 0 {
		bad("-connect-timeout must be positive")
	}
	if debugURL != "" {
		if u, err := checkURL(debugURL); err != nil {
			bad("-debug-url: %v", err)
		} else {
			cfg.debugURL = u
		}
	}
	if cfg.serverProfile != "" && debugURL == "" {
		bad("-server-profile needs -debug-url")
	}
	if cfg.timeout == 0 {
		cfg.timeout = 10*time.Minute + time.Duration(cfg.users)*100*time.Millisecond + cfg.connectTimeout + cfg.warmup + cfg.duration + cfg.drain
		if cfg.scenario == "history" {
			// Up to 100 ms a page, twice with -settle, and the wait.
			cfg.timeout += 2*time.Duration(cfg.queries)*3*time.Second/10 + cfg.settle
		}
	}
	return cfg, errors.Join(errs...)
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// parseRange reads N or MIN-MAX, 1 to 100000.
func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, errors.New("want N or MIN-MAX")
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, errors.New("want N or MIN-MAX")
		}
	}
	if lo < 1 || hi < lo || hi > 100000 {
		return 0, 0, errors.New("sizes must be 1 to 100000, MIN ≤ MAX")
	}
	return lo, hi, nil
}

// fdLimit is the process's open-file limit (raised to the hard limit).
func fdLimit() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

func runScenario(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if lim := fdLimit(); lim > 0 && uint64(cfg.clients)+200 > lim {
		return fmt.Errorf("-clients %d needs about %d open files; this process may hold %d (ulimit -n). "+
			"This version runs in one process: use fewer clients per run", cfg.clients, cfg.clients+200, lim)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	runID := make([]byte, 4)
	rand.Read(runID)
	b := &bench{cfg: cfg, log: stderr, run: "r" + hex.EncodeToString(runID), stats: newStats()}
	b.startNodes()
	b.api = &api{base: cfg.url, hc: newHTTPClient(cfg.sources[0], 2*cfg.setupConcurrency+2*cfg.connectConcurrency+16)}
	b.dead = make([]atomic.Bool, len(cfg.nodes))
	for _, u := range cfg.nodes {
		b.nodeAPI = append(b.nodeAPI, &api{base: u, hc: b.api.hc})
	}
	for _, src := range cfg.sources {
		b.wsDialers = append(b.wsDialers, newDialer(src))
	}
	connCtx, stopConns := context.WithCancel(ctx)
	defer stopConns()
	b.connCtx = connCtx

	fmt.Fprintf(stderr, "mapsim-bench %s against %s (run %s)\n", cfg.scenario, cfg.url, b.run)
	fmt.Fprintf(stderr, "the server must run with %s\n", serverEnvHint)
	if err := b.api.healthz(ctx); err != nil {
		return fmt.Errorf("server at %s does not answer /healthz: %w", cfg.url, err)
	}

	res := &result{
		Scenario: cfg.scenario, Label: cfg.label, Started: time.Now().UTC().Format(time.RFC3339),
		Params: params{
			Clients: cfg.clients, Users: cfg.users, Rate: cfg.rate, Duration: cfg.duration.Seconds(), Warmup: cfg.warmup.Seconds(),
			Senders: cfg.senders, Inflight: cfg.inflight, MsgBytes: cfg.msgBytes, SourceAddrs: len(cfg.sources),
		},
	}
	if err := b.plan(res); err != nil {
		return err
	}
	b.reconnects = make(chan *client, len(b.clients)+1)
	started := time.Now()
	var err error
	switch cfg.scenario {
	case "idle":
		err = b.runIdle(ctx, res)
	case "history":
		res.Params.Messages, res.Params.Queries = cfg.messages, cfg.queries
		err = b.runHistory(ctx, res)
	default:
		err = b.runMessaging(ctx, res)
	}
	stopConns()
	if err != nil {
		b.ending.Store(true)
		for _, c := range b.clients {
			c.cutNow()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: stopped at the deadline or by a signal (%v): %w", cfg.scenario, cfg.timeout, err)
		}
		return err
	}
	res.Seconds = round1(time.Since(started).Seconds())
	res.Drops = b.stats.drops.Load()
	res.Reconnects = b.stats.reconnected.Load()
	res.ReconnectFailed = b.stats.reconnectFailed.Load()
	res.Resent = b.stats.resent.Load()
	res.ErrorFrames = copyCounts(&b.stats.mu, b.stats.errors)
	res.Closes = copyCounts(&b.stats.mu, b.stats.closes)
	res.OtherFrames = copyCounts(&b.stats.mu, b.stats.frames)
	res.Problems = append(res.Problems, b.errorSummary()...)
	if n := res.ErrorFrames["too_many"]; n > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d messages refused with too_many: the server's rate limits were on; start it with %s", n, serverEnvHint))
	}
	if d := res.Deliveries; d != nil && d.Unacked > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d messages neither acked nor refused after a %s drain", d.Unacked, cfg.drain))
	}

	writeTable(stdout, res)
	if cfg.jsonPath != "" {
		if err := appendJSONLine(cfg.jsonPath, res); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	if cfg.svgPath != "" {
		var smp []procSample
		if b.smp != nil {
			b.smp.mu.Lock()
			smp = append(smp, b.smp.server...)
			b.smp.mu.Unlock()
		}
		f, err := os.Create(cfg.svgPath)
		if err != nil {
			return fmt.Errorf("-svg: %w", err)
		}
		title := "mapsim-bench " + cfg.scenario
		if cfg.label != "" {
			title += " (" + cfg.label + ")"
		}
		err = writeSVG(f, title, b.resultPanels(res, smp))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("-svg: %w", err)
		}
	}
	return nil
}

// plan makes the clients and rooms of the scenario.
func (b *bench) plan(res *result) error {
	cfg := b.cfg
	// Users exist before clients: setupUsers fills b.users, but clients
	// only need the *user values, made here.
	b.users = make([]*user, cfg.users)
	for i := range b.users {
		b.users[i] = &user{name: fmt.Sprintf("%s%05d", cfg.prefix, i)}
	}
	b.newClients(cfg.clients)
	switch cfg.scenario {
	case "idle":
	case "fanout":
		b.addRoom(b.clients, cfg.senders, true)
		res.Params.RoomSize = strconv.Itoa(cfg.clients)
	case "rooms", "reconnect", "failover":
		i := 0
		for _, n := range planRooms(cfg.clients, cfg.roomMin, cfg.roomMax, 1) {
			b.addRoom(b.clients[i:i+n], n, true)
			i += n
		}
		res.Params.RoomSize = fmt.Sprintf("%d-%d", cfg.roomMin, cfg.roomMax)
		if cfg.roomMin == cfg.roomMax {
			res.Params.RoomSize = strconv.Itoa(cfg.roomMin)
		}
	case "commits":
		for _, c := range b.clients {
			b.addRoom([]*client{c}, 1, false)
		}
		res.Params.RoomSize = "1 (not synced)"
	case "history":
		b.addRoom(b.clients, len(b.clients), false)
		res.Params.RoomSize = fmt.Sprintf("%d (not synced)", len(b.clients))
	}
	res.Rooms = len(b.rooms)
	return nil
}
