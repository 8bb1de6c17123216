package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

func (s *server) handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, wire.Status{Status: "ok"})
	}
}

func (s *server) handleReadyz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.Log.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, wire.Status{Status: "unavailable", Detail: "The database does not answer."})
			return
		}
		st := wire.Status{Status: "ready"}
		if s.Broker != nil {
			st.Broker = s.Broker()
		}
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *server) handleRegister() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readForm(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		invite := f["invite"]
		if invite == "" {
			invite = f["invite_code"]
		}
		ip := clientIPFrom(r.Context())
		u, err := s.Auth.Register(r.Context(), auth.RegisterRequest{Username: f["username"], Password: f["password"], Email: f["email"], Invite: invite, Addr: ip})
		if err != nil {
			if chat.ErrorCode(err) == chat.ETooMany {
				s.Log.InfoContext(r.Context(), "registration refused", "code", chat.ETooMany, "client_ip", ip)
			}
			s.writeError(w, r, err)
			return
		}
		s.metrics.Registrations.Inc()
		s.Log.InfoContext(r.Context(), "user registered", "user_id", u.ID, "username", u.Username, "client_ip", ip)
		writeJSON(w, http.StatusCreated, wire.Registered{ID: u.ID, Username: u.Username, Email: u.Email})
	}
}

func (s *server) handleLogin() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readForm(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if f["cookie"] == "true" {
			s.handleBrowserLogin(w, r, f)
			return
		}
		ip := clientIPFrom(r.Context())
		tok, err := s.Auth.Login(r.Context(), f["username"], f["password"], ip, r.UserAgent())
		if err != nil {
			s.loginRefused(r, ip, err)
			s.writeError(w, r, err)
			return
		}
		s.metrics.LoginOK.Inc()
		writeJSON(w, http.StatusOK, wire.Token{AccessToken: tok.AccessToken, TokenType: "bearer", ExpiresIn: tok.ExpiresIn, Username: tok.Identity.Username})
	}
}

// loginRefused counts and logs a refused login.
func (s *server) loginRefused(r *http.Request, ip string, err error) {
	switch code := chat.ErrorCode(err); code {
	case chat.EUnauthorized:
		s.metrics.LoginFailed.Inc()
		s.Log.InfoContext(r.Context(), "login refused", "code", code, "client_ip", ip)
	case chat.ETooMany:
		s.metrics.LoginThrottled.Inc()
		s.Log.InfoContext(r.Context(), "login refused", "code", code, "client_ip", ip)
	}
}

func (s *server) handleLogout() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		if err := s.Auth.Logout(r.Context(), id); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Hub.CloseSession(id.SessionID)
		clearRefreshCookie(w)
		writeJSON(w, http.StatusOK, wire.Detail{Detail: "Logged out."})
	}
}

func (s *server) handleWSTicket() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := s.Auth.IssueTicket(r.Context(), identityFrom(r.Context()))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.Ticket{Ticket: t, ExpiresIn: int(auth.TicketTTL / time.Second)})
	}
}

// History page sizes.
const (
	defaultPage = 50
	maxPage     = 200
)

func (s *server) handleMessages() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		before, limit := int64(0), defaultPage
		if v := q.Get("before"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				s.writeError(w, r, chat.Errorf(chat.EInvalid, "before must be a message id (a positive whole number)."))
				return
			}
			before = n
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPage {
				s.writeError(w, r, chat.Errorf(chat.EInvalid, "limit must be a whole number from 1 to %d.", maxPage))
				return
			}
			limit = n
		}
		id := identityFrom(r.Context())
		c, err := s.Chats.Resolve(r.Context(), id, q.Get("chat_id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		msgs, more, err := s.Messages.History(r.Context(), c, before, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := wire.History{Messages: make([]wire.Message, len(msgs)), HasMore: more}
		for i, m := range msgs {
			out.Messages[i] = wire.FromMessage(m)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleOnline lists who is online among the users the asker shares a
// chat with.
func (s *server) handleOnline() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		chatIDs, err := s.Chats.ChatIDs(r.Context(), id.UserID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.OnlineList{Users: s.Hub.OnlineIn(chatIDs)})
	}
}
