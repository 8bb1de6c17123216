// Package metrics is the server's Prometheus face: every family under the
// mapsim_ prefix, registered once, and handed to the packages that count as
// the small structs of counters each of them declares (hub.Metrics,
// delivery.Metrics, uploads.Metrics, store.Timing, httpapi.Metrics), so that
// only this package and the wiring see Prometheus.
//
// Labels are bound once here: the hot paths hold a plain Counter or
// Observer and never look a label up per frame.
package metrics

import (
	"net/http"
	"runtime"

	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/httpapi"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/uploads"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix starts every family the server exports.
const Prefix = "mapsim_"

// RejectReasons are the values of the reason label of
// mapsim_messages_rejected_total: the error codes a message can be refused
// with, and "other" for any code added later.
var RejectReasons = []string{
	chat.EInvalid, chat.EUnauthorized, chat.EForbidden, chat.ENotFound, chat.EConflict,
	chat.ETooMany, chat.ETooLarge, chat.EUnavailable, chat.EInternal, "other",
}

// Registry holds every family of one server.
type Registry struct {
	reg *prometheus.Registry

	hub      hub.Metrics
	delivery delivery.Metrics
	uploads  uploads.Metrics
	timing   store.Timing
	http     httpapi.Metrics
}

// latencyBuckets run from 100 µs to about 6.5 s, doubling: a SQLite commit
// with its fsync sits in the low milliseconds, a frozen database at the top.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

// New makes and registers every family. version labels mapsim_build_info.
func New(version string) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	reg := r.reg
	// The Go runtime's and the process's families, under the prefix too
	// (mapsim_go_goroutines, mapsim_process_resident_memory_bytes).
	wrapped := prometheus.WrapRegistererWithPrefix(Prefix, reg)
	wrapped.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: Prefix + name, Help: help})
		reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: Prefix + name, Help: help, Buckets: buckets})
		reg.MustRegister(h)
		return h
	}

	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Prefix + "build_info", Help: "Always 1; the labels say which build is running."},
		[]string{"version", "go_version"})
	reg.MustRegister(build)
	build.WithLabelValues(version, runtime.Version()).Set(1)

	// WebSockets and messages.
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: Prefix + "messages_rejected_total",
		Help: "Messages (text and file frames) refused, by reason: the error code the client was sent.",
	}, []string{"reason"})
	reg.MustRegister(rejected)
	byReason := make(map[string]hub.Counter, len(RejectReasons))
	for _, reason := range RejectReasons {
		byReason[reason] = rejected.WithLabelValues(reason)
	}
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: Prefix + "rate_limited_frames_total",
		Help: "WebSocket frames refused by a rate limit: limit=frames (the connection's frame rate) or limit=messages (the user's message rate).",
	}, []string{"limit"})
	reg.MustRegister(limited)
	r.hub = hub.Metrics{
		Opened:          counter("ws_connections_opened_total", "WebSocket connections accepted."),
		Received:        counter("messages_received_total", "Messages (text and file frames) received from clients."),
		Delivered:       counter("messages_delivered_total", "Committed messages queued to a connection: one per message and receiving connection."),
		Rejected:        byReason,
		SlowDropped:     counter("slow_clients_dropped_total", "Connections closed because their send queue was full (a client that does not read)."),
		FramesLimited:   limited.WithLabelValues("frames"),
		MessagesLimited: limited.WithLabelValues("messages"),
	}

	// Commits.
	r.delivery = delivery.Metrics{
		GroupSize: histogram("commit_group_size", "Messages committed in one transaction.",
			prometheus.ExponentialBuckets(1, 2, 11)),
		CommitSeconds: histogram("commit_duration_seconds", "Time to store one group of messages, from the start of its transaction to its commit.",
			latencyBuckets),
	}

	// The database.
	queries := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    Prefix + "db_query_duration_seconds",
		Help:    "Time the database took for one statement: op=query (a read, until its first rows), exec (a write) or commit.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	reg.MustRegister(queries)
	r.timing = store.Timing{
		Query:  queries.WithLabelValues("query"),
		Exec:   queries.WithLabelValues("exec"),
		Commit: queries.WithLabelValues("commit"),
	}

	// Files.
	r.uploads = uploads.Metrics{
		Uploads:      counter("uploads_total", "Files stored."),
		UploadBytes:  counter("upload_bytes_total", "Bytes of the files stored (their size before sealing)."),
		JanitorRuns:  counter("janitor_runs_total", "Runs of the quota janitor."),
		JanitorFails: counter("janitor_errors_total", "Runs of the quota janitor that failed."),
		Expired:      counter("janitor_files_expired_total", "Files the quota janitor expired."),
	}

	// HTTP and accounts.
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: Prefix + "logins_total",
		Help: "Logins, by result: success, failure (wrong name or password, disabled user) or throttled (too many failures).",
	}, []string{"result"})
	reg.MustRegister(logins)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: Prefix + "http_requests_total",
		Help: "HTTP requests answered, by status class (2xx, 3xx, 4xx, 5xx; 1xx for WebSocket upgrades).",
	}, []string{"code"})
	reg.MustRegister(requests)
	var byClass [6]httpapi.Counter
	for i := 1; i <= 5; i++ {
		byClass[i] = requests.WithLabelValues(string(rune('0'+i)) + "xx")
	}
	r.http = httpapi.Metrics{
		LoginOK:        logins.WithLabelValues("success"),
		LoginFailed:    logins.WithLabelValues("failure"),
		LoginThrottled: logins.WithLabelValues("throttled"),
		Registrations:  counter("registrations_total", "Accounts registered."),
		Requests:       byClass,
		RequestSeconds: histogram("http_request_duration_seconds", "Time to answer one HTTP request (a WebSocket: until the upgrade).",
			prometheus.DefBuckets),
	}
	return r
}

// Hub returns the hub's counters.
func (r *Registry) Hub() hub.Metrics { return r.hub }

// Delivery returns the commit histograms.
func (r *Registry) Delivery() delivery.Metrics { return r.delivery }

// Uploads returns the upload and janitor counters.
func (r *Registry) Uploads() uploads.Metrics { return r.uploads }

// Timing returns the database's statement timers.
func (r *Registry) Timing() *store.Timing { return &r.timing }

// HTTP returns the HTTP and account counters.
func (r *Registry) HTTP() httpapi.Metrics { return r.http }

// WatchHub exports the hub's own gauges and counters, read at each scrape.
func (r *Registry) WatchHub(h *hub.Hub) {
	gauge := func(name, help string, f func(hub.Stats) float64) {
		r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: Prefix + name, Help: help},
			func() float64 { return f(h.Stats()) }))
	}
	count := func(name, help string, f func(hub.Stats) float64) {
		r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: Prefix + name, Help: help},
			func() float64 { return f(h.Stats()) }))
	}
	gauge("ws_connections", "Open WebSocket connections.", func(s hub.Stats) float64 { return float64(s.Connections) })
	gauge("users_online", "Users with a connection (or within the presence grace).", func(s hub.Stats) float64 { return float64(s.Users) })
	gauge("chats_live", "Chats with at least one subscribed connection.", func(s hub.Stats) float64 { return float64(s.Chats) })
	count("ws_frames_written_total", "Frames written to WebSocket connections.", func(s hub.Stats) float64 { return float64(s.Frames) })
	count("ws_writes_total", "Writes to WebSocket connections (several frames may share one).", func(s hub.Stats) float64 { return float64(s.Writes) })
}

// Broker makes the Redis broker's publish timing (on several nodes only).
func (r *Registry) Broker() broker.Metrics {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: Prefix + "broker_publish_duration_seconds", Help: "Time to publish one pipeline of events to Redis, from its send to its last reply.",
		Buckets: latencyBuckets,
	})
	r.reg.MustRegister(h)
	return broker.Metrics{PublishSeconds: h}
}

// WatchBroker exports the Redis broker's state and counters, read at each
// scrape (on several nodes only).
func (r *Registry) WatchBroker(stats func() broker.RedisStats) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: Prefix + "broker_up",
		Help: "1 while the broker is subscribed to Redis and publishing, 0 while Redis is away."},
		func() float64 {
			if stats().State == "up" {
				return 1
			}
			return 0
		}))
	count := func(name, help string, f func(broker.RedisStats) int64) {
		r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: Prefix + name, Help: help},
			func() float64 { return float64(f(stats())) }))
	}
	count("broker_reconnects_total", "Subscriptions to Redis made again after a loss.", func(s broker.RedisStats) int64 { return s.Reconnects })
	count("broker_gaps_filled_total", "Gaps in a chat's events that were filled from the database.", func(s broker.RedisStats) int64 { return s.GapsFilled })
	count("broker_gaps_reordered_total", "Gaps in a chat's events closed by the missing event arriving from Redis within the reorder wait, without the database.", func(s broker.RedisStats) int64 { return s.Reordered })
	count("broker_events_replayed_total", "Events read back from the database to fill gaps and after reconnects.", func(s broker.RedisStats) int64 { return s.Replayed })
	count("broker_events_published_total", "Events published to Redis.", func(s broker.RedisStats) int64 { return s.Published })
	count("broker_events_received_total", "Events received from Redis.", func(s broker.RedisStats) int64 { return s.Received })
	count("broker_publish_errors_total", "Pipelines of publishes to Redis that failed.", func(s broker.RedisStats) int64 { return s.PublishErrors })
	count("broker_events_lost_total", "Events not published (Redis away, queue full); the other nodes filled them from the database.", func(s broker.RedisStats) int64 { return s.PublishLost })
	count("broker_resyncs_total", "Fills of every live chat from the database (after a reconnect, or another node's lost publishes).", func(s broker.RedisStats) int64 { return s.Resyncs })
	count("broker_barrier_failures_total", "Membership changes not confirmed by every node within the bound.", func(s broker.RedisStats) int64 { return s.BarrierFailed })
	count("broker_shard_subscribes_total", "Shard channels subscribed (a chat got a connection on this node, or the subscription was made again).", func(s broker.RedisStats) int64 { return s.ShardSubscribes })
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: Prefix + "broker_subscribed_shards",
		Help: "Shard channels of chats' events this node is subscribed to (it holds a connection in one of their chats, or did lately)."},
		func() float64 { return float64(stats().SubscribedShards) }))
}

// Gatherer is the registry, for reading the families in-process.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the families in Prometheus's text format (or OpenMetrics
// when the scraper asks for it).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// WatchLoginThrottle exports how many login checks were counted in this
// node's memory because Redis had failed (on several nodes only).
func (r *Registry) WatchLoginThrottle(fallbacks func() int64) {
	r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: Prefix + "login_throttle_fallbacks_total",
		Help: "Login checks the throttle counted in this node's memory (its own budget) because Redis had failed.",
	}, func() float64 { return float64(fallbacks()) }))
}

// WatchSharedLimits exports the state of the rate limits shared among the
// nodes in Redis, read at each scrape (on several nodes only).
func (r *Registry) WatchSharedLimits(s *ratelimit.Shared) {
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: Prefix + "rate_limits_shared",
		Help: "1 while the rate limits are taken from Redis (one budget for every node), 0 while each node limits on its own."},
		func() float64 {
			if s.Up() {
				return 1
			}
			return 0
		}))
	for _, limit := range []string{"messages", "uploads", "registrations"} {
		r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        Prefix + "rate_limit_fallbacks_total",
			Help:        "Rate-limit checks answered by this node's own limiter because Redis did not answer in time, by limit.",
			ConstLabels: prometheus.Labels{"limit": limit},
		}, func() float64 { return float64(s.Fallbacks(limit)) }))
	}
}
