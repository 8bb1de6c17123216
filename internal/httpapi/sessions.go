package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// A browser's refresh token travels in this cookie, to the refresh path
// only: HttpOnly (no page script reads it), Secure, SameSite=Strict (no
// other site's page sends it). Browsers keep Secure cookies that
// http://localhost and http://127.0.0.1 set; on any other plain-HTTP
// address they refuse them, and a reload there asks to log in again.
const (
	refreshCookie = "mapsim_refresh"
	refreshPath   = "/session/refresh"
)

// setRefreshCookie gives the browser its refresh token.
func setRefreshCookie(w http.ResponseWriter, token string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookie, Value: token, Path: refreshPath, MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// clearRefreshCookie makes the browser forget its refresh token.
func clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookie, Value: "", Path: refreshPath, MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// sameOrigin reports whether a request comes from a page of this server:
// its Origin is present and is ours (or PUBLIC_URL). The refresh cookie is
// SameSite=Strict already; this also turns away a sibling subdomain (same
// site, other origin) and a browser that ignores SameSite.
func (s *server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	o, err := config.NormalizeOrigin(origin)
	if err != nil {
		return false
	}
	return o == s.ownOrigin(r) || (s.PublicURL != "" && o == s.PublicURL)
}

var errCrossOrigin = chat.Errorf(chat.EForbidden, "A browser sign-in works only from this server's own pages.")

// handleBrowserLogin is POST /login/ with "cookie": true: the web client's
// login, answered with a short-lived access token and the refresh cookie.
func (s *server) handleBrowserLogin(w http.ResponseWriter, r *http.Request, f map[string]string) {
	if !s.sameOrigin(r) {
		s.writeError(w, r, errCrossOrigin)
		return
	}
	ip := clientIPFrom(r.Context())
	login, err := s.Auth.LoginBrowser(r.Context(), f["username"], f["password"], ip, r.UserAgent())
	if err != nil {
		s.loginRefused(r, ip, err)
		s.writeError(w, r, err)
		return
	}
	s.metrics.LoginOK.Inc()
	setRefreshCookie(w, login.Refresh, login.RefreshTTL)
	writeJSON(w, http.StatusOK, wire.Token{AccessToken: login.AccessToken, TokenType: "bearer", ExpiresIn: login.ExpiresIn, Username: login.Identity.Username})
}

// handleRefresh trades the refresh cookie for a new access token and the
// cookie's successor; without a cookie it answers 204 (nobody signed in).
// Any refusal but an outage clears the cookie.
func (s *server) handleRefresh() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sameOrigin(r) {
			s.writeError(w, r, errCrossOrigin)
			return
		}
		c, err := r.Cookie(refreshCookie)
		if err != nil || c.Value == "" {
			// No browser sign-in here: every page load asks, and the
			// answer is no error (a 401 would be one in every console).
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		login, err := s.Auth.Refresh(r.Context(), c.Value)
		if err != nil {
			if errors.Is(err, auth.ErrRefreshReplayed) {
				// Two parties held one family: whoever comes second
				// ends it for both. Its sockets close now here, and
				// within a second on every other node.
				s.Log.WarnContext(r.Context(), "refresh token replayed; session revoked", "user_id", login.Identity.UserID,
					"session_id", login.Identity.SessionID, "client_ip", clientIPFrom(r.Context()))
				s.Hub.CloseSession(login.Identity.SessionID)
			}
			if chat.ErrorCode(err) == chat.EUnauthorized {
				clearRefreshCookie(w)
			}
			s.writeError(w, r, err)
			return
		}
		if login.Refresh != "" {
			setRefreshCookie(w, login.Refresh, login.RefreshTTL)
		}
		writeJSON(w, http.StatusOK, wire.Token{AccessToken: login.AccessToken, TokenType: "bearer", ExpiresIn: login.ExpiresIn, Username: login.Identity.Username})
	}
}

// handleSessions lists my live sessions, this one marked.
func (s *server) handleSessions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		list, err := s.Auth.Sessions(r.Context(), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := wire.SessionList{Sessions: make([]wire.Session, len(list))}
		for i, sess := range list {
			browser, os := deviceOf(sess.UserAgent)
			out.Sessions[i] = wire.Session{
				ID: sess.ID, Browser: browser, OS: os, UserAgent: chat.Clip(sess.UserAgent, 200), IP: sess.IP,
				CreatedAt: sess.CreatedAt, LastUsedAt: sess.LastUsedAt, Current: sess.ID == id.SessionID,
			}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleEndSession ends one of my sessions and closes its sockets.
func (s *server) handleEndSession() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		sessionID, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
		if err != nil || sessionID < 1 {
			s.writeError(w, r, chat.Errorf(chat.ENotFound, "No such session."))
			return
		}
		if err := s.Auth.EndSession(r.Context(), id, sessionID); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Hub.CloseSession(sessionID)
		if sessionID == id.SessionID {
			clearRefreshCookie(w)
		}
		writeJSON(w, http.StatusOK, wire.Detail{Detail: "Session ended."})
	}
}

// handleEndOtherSessions ends every session of mine but this one.
func (s *server) handleEndOtherSessions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		ended, err := s.Auth.EndOtherSessions(r.Context(), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.closeSessions(id.UserID, ended)
		writeJSON(w, http.StatusOK, wire.Ended{Detail: endedSentence(len(ended)), Ended: len(ended)})
	}
}

// handleChangePassword sets my password; my other sessions end.
func (s *server) handleChangePassword() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readForm(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		id := identityFrom(r.Context())
		ip := clientIPFrom(r.Context())
		ended, err := s.Auth.ChangePassword(r.Context(), id, f["current_password"], f["new_password"], ip)
		if err != nil {
			if code := chat.ErrorCode(err); code == chat.EForbidden || code == chat.ETooMany {
				s.Log.InfoContext(r.Context(), "password change refused", "code", code, "user_id", id.UserID, "client_ip", ip)
			}
			s.writeError(w, r, err)
			return
		}
		s.Log.InfoContext(r.Context(), "password changed", "user_id", id.UserID, "sessions_ended", len(ended), "client_ip", ip)
		s.closeSessions(id.UserID, ended)
		writeJSON(w, http.StatusOK, wire.Ended{Detail: "Password changed. " + endedSentence(len(ended)), Ended: len(ended)})
	}
}

// closeSessions closes this node's sockets of sessions just revoked; the
// other nodes' revocation watch closes theirs.
func (s *server) closeSessions(userID int64, ids []int64) {
	if len(ids) == 0 {
		return
	}
	revoked := make([]chat.Revocation, len(ids))
	for i, sid := range ids {
		revoked[i] = chat.Revocation{SessionID: sid, UserID: userID}
	}
	s.Hub.CloseRevoked(revoked)
}

func endedSentence(n int) string {
	switch n {
	case 0:
		return "No other session was open."
	case 1:
		return "Ended 1 other session."
	default:
		return "Ended " + strconv.Itoa(n) + " other sessions."
	}
}
