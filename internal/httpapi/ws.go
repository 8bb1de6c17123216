package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// ownOrigin is the origin a browser on this server's pages sends.
func (s *server) ownOrigin(r *http.Request) string {
	scheme, host := "http", s.requestHost(r)
	if r.TLS != nil || s.TLS {
		scheme = "https"
	}
	if s.trusted(peerAddr(r.RemoteAddr)) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
	}
	o, err := config.NormalizeOrigin(scheme + "://" + host)
	if err != nil {
		return ""
	}
	return o
}

// originAllowed checks a browser's Origin: it must be ours or listed in
// ALLOWED_ORIGINS. A request without Origin (curl, scripts, native clients)
// is allowed; browsers always send one.
func (s *server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := config.NormalizeOrigin(origin)
	if err != nil {
		return false
	}
	return o == s.ownOrigin(r) || o == s.PublicURL || slices.Contains(s.AllowedOrigins, o)
}

// requestHost is the host the client asked for: X-Forwarded-Host from a
// trusted proxy, else the Host header.
func (s *server) requestHost(r *http.Request) string {
	if s.trusted(peerAddr(r.RemoteAddr)) {
		if h := r.Header.Get("X-Forwarded-Host"); h != "" {
			return h
		}
	}
	return r.Host
}

// hostAllowed reports whether the server answers to a host: an IP address
// or localhost (a page elsewhere cannot make a browser send those), the
// public URL's host, or one of ALLOWED_HOSTS. Any other name may be a
// page of another site whose DNS was re-pointed at this server (DNS
// rebinding): it would be same-origin with itself, so the Origin check
// alone would let it in.
func (s *server) hostAllowed(host string) bool {
	host = strings.ToLower(host)
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err == nil && u.Hostname() == name {
			return true
		}
	}
	for _, a := range s.AllowedHosts {
		if a == host || a == name {
			return true
		}
	}
	return false
}

// pinHost answers 421 to a request for a host name the server does not
// answer to; health checks are answered whatever the name.
func (s *server) pinHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := s.requestHost(r)
		if s.hostAllowed(host) || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusMisdirectedRequest, wire.ErrorBody{
			Detail: "This server does not answer to the name " + strconv.Quote(chat.Clip(host, 100)) +
				": set PUBLIC_URL to the address users reach it at, or add the name to ALLOWED_HOSTS.",
			Code: chat.EForbidden,
		})
	})
}

// handleWS authenticates a WebSocket (single-use ticket, token in the query,
// or bearer header), checks the origin and the chat, and hands the
// connection to the hub.
func (s *server) handleWS() http.HandlerFunc {
	// A frame holds at most MaxMessageBytes of text, which JSON may escape
	// to six bytes a byte, plus the other fields.
	readLimit := int64(s.MaxMessageBytes)*6 + 4096
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.writeError(w, r, chat.Errorf(chat.EForbidden, "WebSocket from origin %q is not allowed; add it to ALLOWED_ORIGINS.", chat.Clip(r.Header.Get("Origin"), 100)))
			return
		}
		q := r.URL.Query()
		var (
			id  chat.Identity
			err error
		)
		switch {
		case q.Get("ticket") != "":
			id, err = s.Auth.RedeemTicket(r.Context(), q.Get("ticket"))
		case q.Get("token") != "":
			id, err = s.Auth.Authenticate(r.Context(), q.Get("token"))
		case bearerToken(r) != "":
			id, err = s.Auth.Authenticate(r.Context(), bearerToken(r))
		default:
			err = chat.Errorf(chat.EUnauthorized, "Open the WebSocket with ?ticket= (POST /ws-ticket/ gives one) or a bearer token.")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		home, err := s.Chats.Resolve(r.Context(), id, strings.TrimSpace(q.Get("chat_name")))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resume := q.Get("resume") == "1" || q.Get("resume") == "true"
		ip := clientIPFrom(r.Context())
		if !s.Conns.Acquire(ip) {
			s.writeError(w, r, chat.Errorf(chat.ETooMany, "This address already holds %d connections; close some and try again.", s.Conns.Limit()))
			return
		}
		if !s.UserConns.Acquire(id.UserID) {
			s.Conns.Release(ip)
			s.writeError(w, r, chat.Errorf(chat.ETooMany, "You already have %d connections open; close a tab or a device and try again.", s.UserConns.Limit()))
			return
		}
		release := func() {
			s.UserConns.Release(id.UserID)
			s.Conns.Release(ip)
		}
		sock, err := s.Hub.Accept(w, r, &websocket.AcceptOptions{
			InsecureSkipVerify: true, // the origin was checked above, against our own rules
			CompressionMode:    websocket.CompressionDisabled,
		})
		if err != nil {
			release()
			return // Accept has answered the client
		}
		infoFrom(r.Context()).connID = sock.ID()
		// Serve returns at once; the connection lives on in the hub, which
		// gives the address's and the user's slots back when it ends.
		s.Hub.Serve(r.Context(), sock, id, home, readLimit, resume, release)
	}
}
