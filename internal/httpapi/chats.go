package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// members reads a list of usernames: a JSON list, a repeated form field, or
// one comma-separated value.
func members(fields map[string][]string) []string {
	var out []string
	for _, v := range fields["members"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}

// pathParam returns a path parameter unescaped: a client may send
// "group%3Aab12" for "group:ab12". A value that does not unescape is
// returned as it is and fails the lookup like any unknown name.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// chatFrom resolves the {chat} in the path for the asking user: a member's
// chat, or the same forbidden answer for a chat that is missing or not
// theirs.
func (s *server) chatFrom(r *http.Request) (chat.Chat, error) {
	return s.Chats.Resolve(r.Context(), identityFrom(r.Context()), pathParam(r, "chat"))
}

func (s *server) summaryBody(sum chat.ChatSummary) wire.Chat {
	out := wire.FromChat(sum, s.Hub.IsOnline)
	if sum.E2EE {
		e := s.Keys.EpochWire(sum.Epoch)
		out.Epoch = &e
	}
	return out
}

func (s *server) handleListChats() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sums, err := s.Chats.List(r.Context(), identityFrom(r.Context()))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		last, err := s.Messages.LastMessages(r.Context(), sums)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]wire.Chat, len(sums))
		for i, sum := range sums {
			out[i] = s.summaryBody(sum)
			if m, ok := last[sum.ID]; ok {
				out[i].LastMessage = wire.Preview(m)
			}
		}
		writeJSON(w, http.StatusOK, wire.ChatList{Chats: out})
	}
}

func (s *server) handleCreateChat() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readFields(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// Direct chats and groups are end-to-end encrypted unless the body
		// says "e2ee": false (scripts and the load tool).
		encrypted := true
		switch field(f, "e2ee") {
		case "", "true", "1":
		case "false", "0":
			encrypted = false
		default:
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "e2ee must be true or false."))
			return
		}
		sum, created, err := s.Chats.Create(r.Context(), identityFrom(r.Context()), chats.CreateRequest{
			Kind: strings.TrimSpace(field(f, "kind")), Title: field(f, "title"), Members: members(f), E2EE: encrypted,
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK // the direct chat existed
		}
		writeJSON(w, status, s.summaryBody(sum))
	}
}

// chatHandler serves a route about one of the asker's chats: it resolves
// {chat} (members only; a missing chat gets the same answer), reads the
// body's fields, and writes what act returns with 200.
func (s *server) chatHandler(act func(r *http.Request, id chat.Identity, c chat.Chat, f map[string][]string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.chatFrom(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := readFields(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out, err := act(r, identityFrom(r.Context()), c, f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// field is the first value of a field, or "".
func field(f map[string][]string, name string) string {
	if len(f[name]) > 0 {
		return f[name][0]
	}
	return ""
}

func (s *server) handleGetChat() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		sum, err := s.Chats.Summary(r.Context(), id, c)
		if err != nil {
			return nil, err
		}
		out := s.summaryBody(sum)
		last, err := s.Messages.LastMessages(r.Context(), []chat.ChatSummary{sum})
		if m, ok := last[sum.ID]; ok {
			out.LastMessage = wire.Preview(m)
		}
		return out, err
	})
}

func (s *server) handleRenameChat() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, f map[string][]string) (any, error) {
		sum, err := s.Chats.Rename(r.Context(), id, c, field(f, "title"))
		return s.summaryBody(sum), err
	})
}

func (s *server) handleAddMembers() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, f map[string][]string) (any, error) {
		sum, err := s.Chats.AddMembers(r.Context(), id, c, members(f))
		return s.summaryBody(sum), err
	})
}

func (s *server) handleRemoveMember() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		err := s.Chats.RemoveMember(r.Context(), id, c, pathParam(r, "username"))
		return wire.Detail{Detail: "Removed."}, err
	})
}

func (s *server) handleLeaveChat() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		err := s.Chats.RemoveMember(r.Context(), id, c, id.Username)
		return wire.Detail{Detail: "You left the group."}, err
	})
}

func (s *server) handleMarkRead() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, f map[string][]string) (any, error) {
		n, err := strconv.ParseInt(field(f, "message_id"), 10, 64)
		if err != nil {
			return nil, chat.Errorf(chat.EInvalid, "message_id must be a message id (a positive whole number).")
		}
		last, err := s.Chats.MarkRead(r.Context(), id, c, n)
		return wire.ReadMarker{LastReadID: last}, err
	})
}

// Search result sizes.
const (
	defaultSearch = 20
	maxSearch     = 50
)

func (s *server) handleSearchUsers() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := defaultSearch
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxSearch {
				s.writeError(w, r, chat.Errorf(chat.EInvalid, "limit must be a whole number from 1 to %d.", maxSearch))
				return
			}
			limit = n
		}
		users, err := s.Chats.SearchUsers(r.Context(), q.Get("q"), limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := wire.UserList{Users: make([]wire.FoundUser, len(users))}
		for i, u := range users {
			out.Users[i] = wire.FoundUser{Profile: wire.ProfileOf(u), Online: s.Hub.IsOnline(u.ID)}
		}
		writeJSON(w, http.StatusOK, out)
	}
}
