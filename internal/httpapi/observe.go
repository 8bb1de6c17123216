package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Counter counts events; a Prometheus counter is one.
type Counter interface {
	Inc()
	Add(float64)
}

// Observer takes one observation; a Prometheus histogram is one.
type Observer interface{ Observe(float64) }

// Metrics are the API's counters, labels bound by the caller. A nil field
// counts nothing.
type Metrics struct {
	LoginOK, LoginFailed, LoginThrottled Counter
	Registrations                        Counter
	// Requests counts answers by status class: Requests[2] the 2xx.
	Requests       [6]Counter
	RequestSeconds Observer
}

type nopMetric struct{}

func (nopMetric) Inc()            {}
func (nopMetric) Add(float64)     {}
func (nopMetric) Observe(float64) {}

func (m Metrics) withDefaults() Metrics {
	for _, c := range []*Counter{&m.LoginOK, &m.LoginFailed, &m.LoginThrottled, &m.Registrations} {
		if *c == nil {
			*c = nopMetric{}
		}
	}
	for i := range m.Requests {
		if m.Requests[i] == nil {
			m.Requests[i] = nopMetric{}
		}
	}
	if m.RequestSeconds == nil {
		m.RequestSeconds = nopMetric{}
	}
	return m
}

// requestInfo is what the access log learns from deeper in the chain: the
// request id, and the WebSocket's conn_id once the hub has it.
type requestInfo struct {
	id     string
	connID string
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(keyRequest).(*requestInfo)
	if info == nil {
		return &requestInfo{}
	}
	return info
}

// LogHandler wraps the server's log handler so that every line logged with
// a request's context (slog's ...Context methods, with r.Context() or a
// context made from it, in a handler or a service it calls) carries the
// request's request_id.
func LogHandler(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if info, _ := ctx.Value(keyRequest).(*requestInfo); info != nil && info.id != "" {
		r.AddAttrs(slog.String("request_id", info.id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// maxRequestIDLen bounds an X-Request-Id taken from a proxy.
const maxRequestIDLen = 128

// wellFormedRequestID accepts what proxies and tracers send (a UUID, hex,
// base64url, nginx's $request_id, "trace-span" pairs): 1 to 128 letters,
// digits and . _ : - only, so that nothing a client chose can break a log
// line or a header.
func wellFormedRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns 96 random bits in hex.
func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID gives every request an id, in its context, in the access log
// line and in the X-Request-Id answer header. An incoming X-Request-Id is
// kept only from one of TRUSTED_PROXIES (which made it, or passed on one it
// trusts) and only when well formed; from anyone else a client could plant
// ids in the log.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		if in := r.Header.Get("X-Request-Id"); in != "" && wellFormedRequestID(in) && s.trusted(peerAddr(r.RemoteAddr)) {
			id = in
		} else {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{id: id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyRequest, info)))
	})
}

// handleMetrics serves the Prometheus families: to a client on this
// machine (loopback, and not relayed by a proxy), or to anyone who sends
// METRICS_TOKEN as a bearer token. Otherwise 401 when a token is set (the
// scraper has the wrong one) and 404 when none is (there is nothing a
// remote client could do to be let in).
func (s *server) handleMetrics() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.localClient(r):
		case s.MetricsToken != "":
			if !tokenMatches(bearerToken(r), s.MetricsToken) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mapsim-chat metrics"`)
				writeJSON(w, http.StatusUnauthorized, wire.ErrorBody{Detail: "Metrics need Authorization: Bearer with METRICS_TOKEN.", Code: chat.EUnauthorized})
				return
			}
		default:
			s.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		s.MetricsHandler.ServeHTTP(w, r)
	}
}

// tokenMatches compares in constant time (for equal lengths; the length
// of the token is not a secret worth a padded compare).
func tokenMatches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// localClient reports whether a request comes from this machine itself:
// the client address (after TRUSTED_PROXIES) is loopback and no proxy
// relayed it. A reverse proxy on the same machine connects from loopback
// too, for clients anywhere: its forwarding headers give it away even when
// TRUSTED_PROXIES is not set.
func (s *server) localClient(r *http.Request) bool {
	if !peerAddr(r.RemoteAddr).IsLoopback() {
		return false
	}
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip", "X-Forwarded-Host", "Via"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

// countRequest counts an answered request by status class and its time.
func (s *server) countRequest(status int, took time.Duration) {
	if c := status / 100; c >= 1 && c <= 5 {
		s.metrics.Requests[c].Inc()
	}
	s.metrics.RequestSeconds.Observe(took.Seconds())
}
