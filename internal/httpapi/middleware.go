package httpapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

type ctxKey int

const (
	keyIdentity ctxKey = iota
	keyClientIP
	keyRequest // *requestInfo
)

// identityFrom returns the identity requireToken stored.
func identityFrom(ctx context.Context) chat.Identity {
	id, _ := ctx.Value(keyIdentity).(chat.Identity)
	return id
}

// clientIPFrom returns the client address clientIP worked out.
func clientIPFrom(ctx context.Context) string {
	ip, _ := ctx.Value(keyClientIP).(string)
	return ip
}

// recoverer turns a panic in a handler into a 500 and a log line, instead
// of a dropped connection.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.ErrorContext(r.Context(), "panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, wire.ErrorBody{Detail: "Internal error.", Code: chat.EInternal})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// clientIP works out the client's address. X-Forwarded-For is believed only
// when the direct peer is one of TRUSTED_PROXIES, and then only up to the
// first address that is not a trusted proxy, read from the right.
func (s *server) clientIP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := peerAddr(r.RemoteAddr)
		if ip.IsValid() && s.trusted(ip) {
			hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
			for i := len(hops) - 1; i >= 0; i-- {
				hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
				if err != nil {
					break
				}
				ip = hop.Unmap()
				if !s.trusted(ip) {
					break
				}
			}
		}
		addr := ""
		if ip.IsValid() {
			addr = ip.String()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyClientIP, addr)))
	})
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

func (s *server) trusted(ip netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// redactedQuery returns the query with the values of secrets replaced, so
// that a token or ticket in a URL never reaches the log.
func redactedQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	out := make(url.Values, len(q))
	for k, v := range q {
		switch strings.ToLower(k) {
		case "token", "ticket", "access_token", "password", "invite", mediaQuery:
			out[k] = []string{"REDACTED"}
		default:
			out[k] = v
		}
	}
	return out.Encode()
}

// statusWriter records the status and size of an answer. It passes
// Hijack through for the WebSocket upgrade.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	w.status = http.StatusSwitchingProtocols
	return hj.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog logs one line per request, with its request_id (and a
// WebSocket's conn_id): never a header, a body, or a secret from the
// query. It counts the request for the metrics too.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		took := time.Since(start)
		s.countRequest(sw.status, took)
		info := infoFrom(r.Context())
		attrs := []any{"request_id", info.id,
			"method", r.Method, "path", r.URL.Path, "query", redactedQuery(r.URL.Query()),
			"status", sw.status, "bytes", sw.bytes, "duration_ms", took.Milliseconds(),
			"client_ip", clientIPFrom(r.Context())}
		if info.connID != "" {
			attrs = append(attrs, "conn_id", info.connID)
		}
		s.Log.Info("request", attrs...)
	})
}

// readDeadline gives every request BodyReadTimeout to send its body, as a
// server-wide ReadTimeout would; the upload handler replaces it with an
// idle timeout. A WebSocket's deadlines are cleared when it is hijacked.
func (s *server) readDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.BodyReadTimeout > 0 {
			// An error means a ResponseWriter without deadlines (not a
			// network connection): nothing to bound.
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.BodyReadTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy forbids inline script and style and every origin
// but our own.
var contentSecurityPolicy = contentSecurityPolicyWith("")

// contentSecurityPolicyWith is contentSecurityPolicy that also allows the
// one inline script whose hash source is given ("'sha256-…'"): index.html's
// import map, which the server writes itself.
func contentSecurityPolicyWith(scriptHash string) string {
	script := "script-src 'self'"
	if scriptHash != "" {
		script += " " + scriptHash
	}
	return "default-src 'self'; " + script + "; style-src 'self'; img-src 'self' blob: data:; " +
		"media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
}

// securityHeaders sets the headers every answer carries.
func (s *server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.TLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// requireToken lets a request through only with a valid bearer token of a
// live session, and puts the identity in its context.
func (s *server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearerToken(r)
		if token == "" {
			s.writeError(w, r, chat.Errorf(chat.EUnauthorized, "This needs an access token: send Authorization: Bearer <token> (POST /login/ gives one)."))
			return
		}
		id, err := s.Auth.Authenticate(r.Context(), token)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyIdentity, id)))
	})
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, chat.Errorf(chat.ENotFound, "No such page: %s", chat.Clip(r.URL.Path, 100)))
}

func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMethodNotAllowed, wire.ErrorBody{Detail: r.Method + " is not allowed here.", Code: chat.EInvalid})
}
