package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// routes is the whole API on one screen. Paths accept a trailing slash or
// not.
func (s *server) routes() *chi.Mux {
	r := chi.NewRouter()
	r.Use(s.requestID, s.recoverer, s.readDeadline, s.clientIP, s.accessLog, s.securityHeaders, s.pinHost, middleware.StripSlashes)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	// The web client, from memory; HEAD too.
	site := newStaticSite(s.Web)
	r.Get("/", s.handleIndex(site))
	r.Head("/", s.handleIndex(site))
	r.Get("/static/*", s.handleStatic(site))
	r.Head("/static/*", s.handleStatic(site))

	// Health, for load balancers, systemd and container runtimes; HEAD too,
	// which some probes send (net/http leaves the body out).
	r.Get("/healthz", s.handleHealthz())
	r.Head("/healthz", s.handleHealthz())
	r.Get("/readyz", s.handleReadyz())
	r.Head("/readyz", s.handleReadyz())

	// Prometheus metrics: loopback clients, or the METRICS_TOKEN bearer.
	r.Get("/metrics", s.handleMetrics())

	// Accounts.
	r.Post("/register", s.handleRegister())
	r.Post("/login", s.handleLogin())
	// A browser's refresh cookie, traded for an access token; it is the
	// request's only credential, so only our own pages may send it.
	r.Post(refreshPath, s.handleRefresh())

	// Everything below needs a bearer token.
	r.Group(func(r chi.Router) {
		r.Use(s.requireToken)
		r.Post("/logout", s.handleLogout())
		r.Post("/password", s.handleChangePassword())
		// My sessions (owner only: another user's session is not found).
		r.Get("/sessions", s.handleSessions())
		r.Delete("/sessions/{id}", s.handleEndSession())
		r.Post("/sessions/end-others", s.handleEndOtherSessions())
		r.Post("/ws-ticket", s.handleWSTicket())
		r.Get("/messages", s.handleMessages())
		r.Get("/users/online", s.handleOnline())
		r.Get("/users/search", s.handleSearchUsers())
		r.Get("/users/profiles", s.handleProfiles())
		r.Get("/users/{username}/avatar", s.handleAvatar())

		// My own profile: display name and avatar.
		r.Get("/profile", s.handleGetProfile())
		r.Patch("/profile", s.handlePatchProfile())
		r.Put("/profile/avatar", s.handlePutAvatar())
		r.Delete("/profile/avatar", s.handleDeleteAvatar())

		// Chats: {chat} is a chat's id or name; members only.
		r.Get("/chats", s.handleListChats())
		r.Post("/chats", s.handleCreateChat())
		r.Get("/chats/{chat}", s.handleGetChat())
		r.Patch("/chats/{chat}", s.handleRenameChat())
		r.Post("/chats/{chat}/members", s.handleAddMembers())
		r.Delete("/chats/{chat}/members/{username}", s.handleRemoveMember())
		r.Post("/chats/{chat}/leave", s.handleLeaveChat())
		r.Post("/chats/{chat}/read", s.handleMarkRead())
		r.Put("/chats/{chat}/notify", s.handleSetNotify())

		// End-to-end encryption (E2EE.md "The API"): my own keys and
		// backup; anyone's public keys; a chat's devices, epochs and my
		// envelopes, members only.
		r.Put("/keys/identity", s.handlePutIdentity())
		r.Post("/keys/devices", s.handlePublishDevice())
		r.Delete("/keys/devices/{device}", s.handleRevokeDevice())
		r.Get("/keys/users/{username}", s.handleUserKeys())
		r.Put("/keys/backup", s.handlePutBackup())
		r.Get("/keys/backup", s.handleGetBackup())
		r.Post("/keys/backup/room-keys", s.handlePutBackupItems())
		r.Get("/keys/backup/room-keys", s.handleBackupItems())
		r.Get("/chats/{chat}/devices", s.handleChatDevices())
		r.Get("/chats/{chat}/epochs", s.handleEpochState())
		r.Post("/chats/{chat}/epochs", s.handleStartEpoch())
		r.Get("/chats/{chat}/epochs/{epoch}", s.handleEnvelope())

		// Files: members of the file's chat only.
		r.Post("/upload", s.handleUpload())
		r.Get("/file/{id}", s.handleFile(false))
		r.Get("/file/{id}/thumbnail", s.handleFile(true))
		// A short-lived URL that plays an audio or video file in a media
		// element (which cannot send the token).
		r.Post("/file/{id}/media-url", s.handleMediaURL())
	})

	// That URL: its signed query stands in for the token; membership of
	// the file's chat is checked on every request.
	r.Get("/file/{id}/media", s.handleMedia())

	// The WebSocket authenticates itself (ticket, token or header).
	r.Get("/ws", s.handleWS())
	return r
}

// Routes lists every route as "METHOD /pattern", so that a test can insist
// on covering each one.
func Routes() []string {
	var out []string
	chi.Walk((&server{}).routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	return out
}
