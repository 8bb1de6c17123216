package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/httpapi"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/metrics"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/redisstate"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/tlscert"
	"github.com/mapsim/mapsim-chat/internal/uploads"
	"github.com/mapsim/mapsim-chat/web"
	goredis "github.com/redis/go-redis/v9"
)

const usage = `usage: mapsim-chat [command]

commands:
  serve            run the server (the default)
  migrate          apply database migrations and exit
  admin ...        administration; "mapsim-chat admin help" lists its commands
  chat -username NAME [-url http://127.0.0.1:8000] [-chat global|@USER|GROUP] [-keys FILE]
                   a terminal client: the password (asked for without echo on a
                   terminal, else the first line of standard input, or in
                   MAPSIM_CHAT_PASSWORD); in an end-to-end encrypted chat then the
                   recovery passphrase (or MAPSIM_CHAT_PASSPHRASE); then one
                   message per line (/help lists /verify and /accept)
  gen-cert [-host NAME-OR-IP ...] [-out tls] [-days 365] [-force]
                   write a self-signed certificate and key for TLS_CERT_FILE and
                   TLS_KEY_FILE (default hosts: localhost, 127.0.0.1, this machine)
  healthcheck [-url http://127.0.0.1:8000] [-timeout 5s]
                   exit 0 if the server (by default the one LISTEN_ADDR names)
                   answers GET /healthz with 200, 1 otherwise
  version          print the version

Every command takes -h (or --help) for its usage.

Settings come from the environment and ./.env; see .env.example.
The server reads its TLS certificate files again on SIGHUP; SIGINT and
SIGTERM stop it.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// run is the whole program behind main, so tests can start it in-process.
// hangup delivers SIGHUP (main's, or a test's channel): the server reads its
// certificate files again and goes on; any other command stops, as a
// hangup used to stop it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, hangup <-chan os.Signal) error {
	cmd, rest := "serve", []string(nil)
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	if cmd != "serve" {
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		go func() {
			select {
			case <-hangup:
				stop()
			case <-ctx.Done():
			}
		}()
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mapsim-chat", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	case "chat":
		return runChat(ctx, args[2:], getenv, stdin, stdout, stderr)
	case "gen-cert":
		return runGenCert(args[2:], stdout)
	case "healthcheck":
		return runHealthcheck(ctx, args[2:], getenv, stdout)
	case "serve", "migrate", "admin":
		if helpAsked(rest) {
			help := usage
			if cmd == "admin" {
				help = adminUsage
			}
			fmt.Fprint(stdout, help)
			return nil
		}
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)

	switch cmd {
	case "migrate":
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		v, err := st.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "database schema is at version %d\n", v)
		return nil
	case "admin":
		return runAdmin(ctx, cfg, log, args[2:], getenv, stdin, stdout)
	}
	return serve(ctx, cfg, log, stdout, hangup)
}

// reportError writes the error that ended the program: a JSON line when
// LOG_FORMAT=json, so that a JSON run has no line that is not JSON, and
// "mapsim-chat: ..." otherwise.
func reportError(w io.Writer, getenv func(string) string, err error) {
	if strings.EqualFold(strings.TrimSpace(getenv("LOG_FORMAT")), "json") {
		slog.New(slog.NewJSONHandler(w, nil)).Error("mapsim-chat: " + err.Error())
		return
	}
	fmt.Fprintln(w, "mapsim-chat:", err)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if cfg.Debug {
		opts.Level = slog.LevelDebug
	}
	// Lines logged with a request's context carry its request_id.
	if cfg.LogFormat == "json" {
		return slog.New(httpapi.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(httpapi.LogHandler(slog.NewTextHandler(w, opts)))
}

func openStore(ctx context.Context, cfg config.Config) (*store.DB, error) {
	return openTimedStore(ctx, cfg, nil)
}

// openTimedStore opens the store timing its statements (timing nil: not).
func openTimedStore(ctx context.Context, cfg config.Config, timing *store.Timing) (*store.DB, error) {
	return store.Open(ctx, store.Options{
		Driver: cfg.DBDriver, SQLitePath: cfg.SQLitePath(),
		Host: cfg.DBHost, Port: cfg.DBPort, Name: cfg.DBName, User: cfg.DBUser, Password: cfg.DBPass,
		Timing: timing,
	})
}

// secret returns SECRET_KEY, or the generated key in DATA_DIR (made on
// first start, mode 0600).
func secret(cfg config.Config, log *slog.Logger) ([]byte, error) {
	if cfg.SecretKey != nil {
		return cfg.SecretKey, nil
	}
	key, created, err := keyring.LoadOrCreateSecretFile(cfg.SecretFile())
	if err != nil {
		return nil, fmt.Errorf("SECRET_KEY is not set and %s cannot be used: %w", cfg.SecretFile(), err)
	}
	if created {
		log.Warn("SECRET_KEY is not set: generated one and saved it; back it up, without it the stored history cannot be read",
			"path", cfg.SecretFile())
	}
	return key, nil
}

// app is the wired server.
type app struct {
	store     *store.DB
	ring      *keyring.Ring
	sequencer *sequencer.Sequencer
	auth      *auth.Service
	hub       *hub.Hub
	uploads   *uploads.Service
	handler   http.Handler
	// redis is the broker among several nodes, and presence who is online
	// on them; nil on a single node.
	redis    *broker.Redis
	presence *redisstate.Presence
	// limitsRedis is the client the shared rate limits ask (it gives up
	// sooner than the broker's); nil on a single node.
	limitsRedis *goredis.Client
}

// sharedThrottle keeps the login throttle's counts in Redis.
type sharedThrottle struct{ t *redisstate.Throttles }

func (s sharedThrottle) Update(ctx context.Context, username, addr string, now time.Time, release string,
	f func(pair, addr, user *auth.ThrottleEntry) string) error {
	err := s.t.Update(ctx, username, addr, now, release, func(p, a, u *redisstate.ThrottleEntry) string {
		es := [3]auth.ThrottleEntry{
			{Failures: p.Failures, Pending: p.Pending, Last: p.Last, Until: p.Until},
			{Failures: a.Failures, Pending: a.Pending, Last: a.Last, Until: a.Until},
			{Failures: u.Failures, Pending: u.Pending, Last: u.Last, Until: u.Until},
		}
		reserve := f(&es[0], &es[1], &es[2])
		for i, e := range []*redisstate.ThrottleEntry{p, a, u} {
			*e = redisstate.ThrottleEntry{Failures: es[i].Failures, Pending: es[i].Pending, Last: es[i].Last, Until: es[i].Until}
		}
		return reserve
	})
	if errors.Is(err, redisstate.ErrContended) {
		return auth.ErrStoreContended
	}
	return err
}

func (s sharedThrottle) Unlock(ctx context.Context, username, addr string) error {
	return s.t.Unlock(ctx, username, addr)
}

// nodePresence hands the hub's presence changes to Redis.
type nodePresence struct{ p *redisstate.Presence }

func (n nodePresence) Online(userID int64, username string, online bool) {
	n.p.Set(redisstate.PresenceChange{UserID: userID, Username: username, Online: online})
}

// revocationPoll is how often the server looks for sessions revoked and
// users disabled by another process (the admin command, another node):
// their WebSockets close within about this long.
const revocationPoll = time.Second

// Sizes of the sequencer's queues: messages waiting for the committer (a
// few groups' worth), and commits waiting for the publisher.
const (
	commitQueue  = 4 * delivery.MaxGroup
	publishQueue = 64
)

func build(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	key, err := secret(cfg, log)
	if err != nil {
		return nil, err
	}
	m := metrics.New(version)
	st, err := openTimedStore(ctx, cfg, m.Timing())
	if err != nil {
		return nil, err
	}
	ring, err := keyring.Open(ctx, st, key, time.Now())
	if err != nil {
		st.Close()
		return nil, err
	}
	var (
		b     chat.Broker = broker.NewLocal()
		redis *broker.Redis
		// recheck is the hub's, once it is made.
		recheck = func(context.Context) {}
	)
	if cfg.RedisURL != "" {
		if redis, err = broker.NewRedis(broker.RedisOptions{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Log: log, Forget: st.Forget, Metrics: m.Broker(),
			Recheck: func(ctx context.Context) { st.ForgetAll(); recheck(ctx) }}); err != nil {
			st.Close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		b = redis
	}
	var (
		tickets  auth.TicketStore // in this node's memory
		presence *redisstate.Presence
		shared   hub.Presence
		// limits keeps the rate limits' budgets in Redis, one per user
		// or address for every node.
		limits      *ratelimit.Shared
		limitsRedis *goredis.Client
	)
	if redis != nil {
		limitsRedis = redisstate.FastClient(redis.Client(), cfg.RedisLimitTimeout)
		limits = ratelimit.NewShared(redisstate.NewBuckets(limitsRedis, cfg.RedisPrefix), ratelimit.SharedOptions{
			Timeout: cfg.RedisLimitTimeout, Log: log,
		})
		m.WatchSharedLimits(limits)
		tickets = redisstate.NewTickets(redis.Client(), cfg.RedisPrefix)
		presence = redisstate.NewPresence(redis.Client(), cfg.RedisPrefix, redisstate.PresenceOptions{
			Node: redis.Node(), TTL: cfg.PresenceNodeTTL, Grace: cfg.PresenceGrace, Log: log,
		})
		shared = nodePresence{presence}
	}
	seq := sequencer.New(sequencer.Options{QueueDepth: commitQueue, PublishDepth: publishQueue})
	keysSvc := keys.New(keys.Options{Store: st, Ring: ring, Broker: b, Log: log, MaxMessageBytes: cfg.MaxMessageBytes})
	messages := delivery.New(delivery.Options{
		E2EE: keysSvc, Store: st, Ring: ring, Sequencer: seq, Broker: b, Log: log, MaxMessageBytes: cfg.MaxMessageBytes, CommitTimeout: cfg.CommitTimeout,
		Metrics: m.Delivery(),
	})
	chatsSvc := chats.New(chats.Options{Store: st, Ring: ring, Sequencer: seq, Broker: b, Log: log, CommitTimeout: cfg.CommitTimeout})
	au := auth.NewService(auth.Options{
		Store: st, SigningKey: keyring.SigningKey(key), TokenTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL,
		Registration: cfg.Registration, RegistrationsPerHour: cfg.RegistrationsPerHour, SharedLimits: limits,
		ConcurrentHash: max(2, runtime.GOMAXPROCS(0)), Tickets: tickets,
	})
	if redis != nil {
		au.ShareThrottle(sharedThrottle{redisstate.NewThrottles(redis.Client(), cfg.RedisPrefix)})
		m.WatchLoginThrottle(au.ThrottleFallbacks)
	}
	h := hub.New(hub.Options{
		Messages: messages, Chats: chatsSvc, Broker: b, Log: log, Limits: cfg.Limits(), SharedLimits: limits,
		QueueSize: cfg.WSQueueSize, PingInterval: cfg.WSPingInterval, PongTimeout: cfg.WSPongTimeout, WriteTimeout: cfg.WSWriteTimeout,
		FrameTimeout: cfg.CommitTimeout,
		SyncPage:     cfg.SyncPageSize, TypingTTL: cfg.TypingTTL, PresenceLimit: cfg.PresenceLimit, PresenceGrace: cfg.PresenceGrace,
		WriteDelay: cfg.WriteDelay, BusyWrites: cfg.WSBusyWrites,
		Metrics: m.Hub(), Presence: shared,
	})
	m.WatchHub(h)
	var brokerState func() string
	if redis != nil {
		redis.Attach(delivery.NewReplay(messages, st), h)
		recheck = h.Recheck
		presence.Attach(h.LocalOnline, func(changes []redisstate.PresenceChange) {
			out := make([]hub.PresenceChange, len(changes))
			for i, c := range changes {
				out[i] = hub.PresenceChange{UserID: c.UserID, Username: c.Username, Online: c.Online}
			}
			h.RemotePresence(context.Background(), out)
		})
		brokerState = func() string { return redis.Stats().State }
		m.WatchBroker(redis.Stats)
	}
	up, err := newUploads(cfg, st, ring, log, m.Uploads(), redis, limits)
	if err != nil {
		st.Close()
		if limitsRedis != nil {
			limitsRedis.Close()
		}
		return nil, err
	}
	handler := httpapi.NewServer(httpapi.Deps{
		Broker: brokerState,
		Auth:   au, Messages: messages, Chats: chatsSvc, Hub: h, Uploads: up, Keys: keysSvc, Ready: st.Ping, Log: log, Web: web.Static(),
		Conns: ratelimit.NewConns[string](cfg.MaxConnsPerIP), UserConns: ratelimit.NewConns[int64](cfg.MaxConnsPerUser),
		AllowedOrigins: cfg.AllowedOrigins, TrustedProxies: cfg.TrustedProxies,
		PublicURL: cfg.PublicURL, AllowedHosts: cfg.AllowedHosts,
		MaxMessageBytes: cfg.MaxMessageBytes, TLS: cfg.TLS(),
		BodyReadTimeout: cfg.RequestReadTimeout, UploadIdleTimeout: cfg.UploadIdleTimeout,
		MetricsHandler: m.Handler(), MetricsToken: cfg.MetricsToken, Metrics: m.HTTP(),
	})
	return &app{store: st, ring: ring, sequencer: seq, auth: au, hub: h, uploads: up, handler: handler, redis: redis, presence: presence,
		limitsRedis: limitsRedis}, nil
}

// newUploads opens the upload folder. ring may be nil for admin commands
// that only expire or remove files; redis is the broker among several
// nodes, whose folder is shared and whose janitor runs on one at a time
// (nil on one node), and limits keeps each user's upload rate for every
// node (nil on one node).
func newUploads(cfg config.Config, st *store.DB, ring *keyring.Ring, log *slog.Logger, counts uploads.Metrics, redis *broker.Redis, limits *ratelimit.Shared) (*uploads.Service, error) {
	var scanner *files.Scanner
	if cfg.ClamAVAddr != "" {
		scanner = &files.Scanner{Addr: cfg.ClamAVAddr, Timeout: 2 * time.Minute}
	}
	up, err := uploads.New(uploads.Options{
		Store: st, Ring: ring, Log: log, Dir: cfg.UploadDir,
		MaxFileBytes: cfg.UploadMaxFileBytes, MaxTotalBytes: cfg.UploadMaxSizeBytes, UserQuotaBytes: cfg.UploadUserQuotaBytes,
		UploadsPerMinute: cfg.UploadRate, UploadBurst: cfg.UploadBurst, Scanner: scanner, Metrics: counts,
		Shared: redis != nil, Lock: janitorLock(cfg, redis), SharedLimits: limits,
	})
	if err != nil {
		return nil, fmt.Errorf("UPLOAD_DIR %s: %w", cfg.UploadDir, err)
	}
	return up, nil
}

// janitorLock is the lock that lets one node at a time run the upload
// janitor; nil on one node.
func janitorLock(cfg config.Config, redis *broker.Redis) func(context.Context, string, time.Duration) (func(), bool) {
	if redis == nil {
		return nil
	}
	return redisstate.NewLocks(redis.Client(), cfg.RedisPrefix).TryLock
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer, hangup <-chan os.Signal) error {
	if err := os.MkdirAll(cfg.UploadDir, 0o700); err != nil {
		return fmt.Errorf("UPLOAD_DIR %s: %w", cfg.UploadDir, err)
	}
	certs, err := newServerTLS(cfg)
	if err != nil {
		return err
	}
	a, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if a.limitsRedis != nil {
		defer a.limitsRedis.Close()
	}
	log.Info("database ready", "driver", cfg.DBDriver, "key_version", a.ring.Current(), "key_versions", a.ring.Len())
	// Before the server listens no upload can be running, so whatever is
	// unfinished in the upload folder was left by a crash.
	if n, err := a.uploads.RemoveLeftovers(ctx); err != nil {
		return fmt.Errorf("UPLOAD_DIR %s: remove what a crash left: %w", cfg.UploadDir, err)
	} else if n > 0 {
		log.Info("removed files a crash left in the upload folder", "files", n)
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	// No ReadTimeout: it would bound a whole request, and so fail every
	// upload slower than it. The handler bounds request bodies instead
	// (cfg.RequestReadTimeout, and for uploads cfg.UploadIdleTimeout
	// between two reads).
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().(*net.TCPAddr)

	// With ACME, plain HTTP (port 80) answers HTTP-01 challenges and sends
	// everything else to https.
	var acmeSrv *http.Server
	var acmeLn net.Listener
	if certs != nil {
		srv.TLSConfig = certs.config
		if certs.acme != nil && cfg.ACMEHTTPAddr != "" {
			if acmeLn, err = net.Listen("tcp", cfg.ACMEHTTPAddr); err != nil {
				ln.Close()
				return fmt.Errorf("ACME_HTTP_ADDR %s: %w", cfg.ACMEHTTPAddr, err)
			}
			acmeSrv = &http.Server{
				Handler:           certs.acme.HTTPHandler(tlscert.Redirect(acmeRedirectBase(cfg, addr.Port))),
				ReadHeaderTimeout: cfg.ReadHeaderTimeout,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       60 * time.Second,
				MaxHeaderBytes:    16 << 10,
				ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			}
		}
	}

	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(ctx, cfg.DebugAddr, a.hub, a.redis, log)
		if err != nil {
			ln.Close()
			if acmeLn != nil {
				acmeLn.Close()
			}
			return fmt.Errorf("DEBUG_ADDR %s: %w", cfg.DebugAddr, err)
		}
		defer stopDebug()
	}

	// Background work, stopped in order at shutdown.
	var jobs sync.WaitGroup
	commitCtx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobs.Go(func() { a.sequencer.Run(commitCtx) })
	if a.redis != nil {
		// The broker outlives the sequencer, to publish its last commits.
		brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
		jobs.Go(func() { a.redis.Run(brokerCtx) })
		jobs.Go(func() { <-a.sequencer.Stopped(); stopBroker() })
	}
	jobs.Go(func() { a.auth.Run(jobsCtx) })
	jobs.Go(func() { a.hub.Run(jobsCtx) })
	if a.presence != nil {
		jobs.Go(func() { a.presence.Run(jobsCtx) })
	}
	jobs.Go(func() { a.auth.WatchRevocations(jobsCtx, revocationPoll, log, a.hub.CloseRevoked) })
	jobs.Go(func() { a.auth.WatchUnlocks(jobsCtx, a.store, revocationPoll, log) })
	jobs.Go(func() { a.uploads.Run(jobsCtx, cfg.UploadCheckInterval) })
	// SIGHUP never ends the server: under systemd a death by SIGHUP counts
	// as clean, and Restart=on-failure would leave it down.
	jobs.Go(func() {
		for {
			select {
			case <-jobsCtx.Done():
				return
			case <-hangup:
				certs.reload(log)
			}
		}
	})

	announceListening(cfg, log, stdout, addr, certs, acmeLn)

	served := make(chan error, 2)
	go func() {
		if certs != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	if acmeSrv != nil {
		go func() { served <- acmeSrv.Serve(acmeLn) }()
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}

	// Shutdown in order: stop accepting, tell WebSocket clients to
	// reconnect (1012), drain the committer, stop jobs, close the database.
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if acmeSrv != nil {
		acmeSrv.Shutdown(shutdownCtx)
	}
	srv.Shutdown(shutdownCtx)
	a.hub.Shutdown(shutdownCtx)
	stopCommitter()
	stopJobs()
	jobs.Wait()
	log.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// announceListening says where the server listens and whether anyone may
// register: one line on stdout that scripts and tests read ("Mapsim Chat
// listening on URL"), and the same facts in a log line in the chosen format.
func announceListening(cfg config.Config, log *slog.Logger, stdout io.Writer, addr *net.TCPAddr, certs *serverTLS, acmeLn net.Listener) {
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := scheme + "://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
	registration := map[string]string{
		config.RegistrationOpen:   "registration open to anyone",
		config.RegistrationInvite: "registration by invite",
		config.RegistrationClosed: "registration closed",
	}[cfg.Registration]
	// In JSON mode the banner is a JSON line too: every line the server
	// writes then parses, whichever stream a collector reads.
	say := func(msg string, attrs ...any) { fmt.Fprintln(stdout, msg) }
	if cfg.LogFormat == "json" {
		banner := slog.New(slog.NewJSONHandler(stdout, nil))
		say = func(msg string, attrs ...any) { banner.Info(msg, attrs...) }
	}
	say(fmt.Sprintf("Mapsim Chat listening on %s (%s)", url, registration), "url", url, "registration", cfg.Registration)
	attrs := []any{"url", url, "addr", addr.String(), "every_interface", addr.IP.IsUnspecified(), "tls", cfg.TLS(), "registration", cfg.Registration}
	switch {
	case certs != nil && certs.files != nil:
		attrs = append(attrs, "cert_file", cfg.TLSCert)
		attrs = append(attrs, certAttrs(certs.files.Leaf())...)
	case certs != nil && certs.acme != nil:
		attrs = append(attrs, "acme_domain", cfg.ACMEDomain, "acme_cache", cfg.ACMECacheDir())
		if acmeLn != nil {
			attrs = append(attrs, "acme_http_addr", acmeLn.Addr().String())
			say(fmt.Sprintf("Mapsim Chat answers ACME HTTP-01 challenges and redirects to https on http://%s", acmeLn.Addr()),
				"acme_http_addr", acmeLn.Addr().String())
		}
	}
	log.Info("listening", attrs...)
	if !cfg.TLS() && !addr.IP.IsLoopback() {
		log.Warn("serving plain HTTP beyond this machine: passwords and tokens cross the network unencrypted; "+
			"set TLS_CERT_FILE (mapsim-chat gen-cert) or ACME_DOMAIN, or listen on 127.0.0.1 behind a TLS proxy",
			"addr", addr.String(), "registration", cfg.Registration)
	}
}
