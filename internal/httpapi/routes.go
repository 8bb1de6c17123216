package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// routes is the whole API on one screen. Paths accept a trailing slash or
// not.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.clientIP, s.accessLog, s.securityHeaders, middleware.StripSlashes)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	// The web client.
	r.Get("/", s.handleIndex())
	r.Get("/static/index.html", s.handleIndex())
	r.Get("/static/*", s.handleStatic())

	// Health, for load balancers and systemd.
	r.Get("/healthz", s.handleHealthz())
	r.Get("/readyz", s.handleReadyz())

	// Accounts.
	r.Post("/register", s.handleRegister())
	r.Post("/login", s.handleLogin())

	// Everything below needs a bearer token.
	r.Group(func(r chi.Router) {
		r.Use(s.requireToken)
		r.Post("/logout", s.handleLogout())
		r.Post("/ws-ticket", s.handleWSTicket())
		r.Get("/messages", s.handleMessages())
		r.Get("/users/online", s.handleOnline())
	})

	// The WebSocket authenticates itself (ticket, token or header).
	r.Get("/ws", s.handleWS())
	return r
}
