// Package httpapi is Mapsim Chat's HTTP face: the REST API, the WebSocket
// endpoint and the embedded web client, behind one router. Every route is
// in routes.go.
package httpapi

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// Deps are what the API serves from: the services, never the store.
type Deps struct {
	Auth     *auth.Service
	Messages *delivery.Service
	Chats    *chats.Service
	Hub      *hub.Hub
	Uploads  *uploads.Service
	Keys     *keys.Service
	// Ready reports whether the server can serve: the database answers.
	Ready func(ctx context.Context) error
	// Broker, when set, names the state of the broker among several
	// nodes ("up" or "down"), which /readyz reports. A node whose Redis is
	// down still serves: its messages commit and reach its own
	// connections, and the other nodes catch up when Redis is back.
	Broker func() string
	Log    *slog.Logger
	Web    fs.FS // the web client's files, index.html at the root
	// Conns caps concurrent WebSocket connections per client address, and
	// UserConns per user.
	Conns     *ratelimit.Conns[string]
	UserConns *ratelimit.Conns[int64]

	AllowedOrigins []string // besides the server's own origin
	// PublicURL (an origin, or "") and AllowedHosts are the host names the
	// server answers to besides IP addresses and localhost; see
	// config.Config.
	PublicURL       string
	AllowedHosts    []string
	TrustedProxies  []netip.Prefix
	MaxMessageBytes int
	TLS             bool

	// BodyReadTimeout bounds the time to read a request's body (0: none).
	// The server itself sets no total read deadline, so that an upload can
	// take as long as it needs: an upload is held to UploadIdleTimeout
	// instead, the longest it may go without sending a byte.
	BodyReadTimeout   time.Duration
	UploadIdleTimeout time.Duration

	// MetricsHandler serves GET /metrics (nil: the route answers 404) to
	// loopback clients, and to anyone with MetricsToken ("" for none) as a
	// bearer token. Metrics are the API's own counters.
	MetricsHandler http.Handler
	MetricsToken   string
	Metrics        Metrics
}

// NewServer returns the whole HTTP API as one handler.
func NewServer(d Deps) http.Handler {
	s := &server{Deps: d, metrics: d.Metrics.withDefaults()}
	return s.routes()
}

type server struct {
	Deps
	metrics Metrics // Deps.Metrics with every field set
}
