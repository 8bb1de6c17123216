package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// The profile routes act on the asker's own account only: there is no
// {user} in their paths, so nobody can name another's.

// ownProfile is GET /profile's answer: the public profile, and the email.
type ownProfile struct {
	wire.Profile
	Email string `json:"email"`
	Role  string `json:"role"`
}

func profileBody(u chat.User) ownProfile {
	return ownProfile{Profile: wire.ProfileOf(u), Email: u.Email, Role: u.Role}
}

func (s *server) handleGetProfile() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.Chats.Profile(r.Context(), identityFrom(r.Context()))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, profileBody(u))
	}
}

func (s *server) handlePatchProfile() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := readFields(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, ok := f["display_name"]; !ok {
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "Send display_name (\"\" removes it)."))
			return
		}
		u, err := s.Chats.SetDisplayName(r.Context(), identityFrom(r.Context()), field(f, "display_name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, profileBody(u))
	}
}

// handlePutAvatar takes the image as the whole body (Content-Type image/…)
// or as the "avatar" field of a multipart form.
func (s *server) handlePutAvatar() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const limit = chats.MaxAvatarBytes
		r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10)
		var (
			src io.Reader
			err error
		)
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case strings.HasPrefix(mt, "image/"):
			src = r.Body
		case mt == "multipart/form-data":
			file, _, ferr := r.FormFile("avatar")
			if ferr != nil {
				err = ferr
				break
			}
			defer file.Close()
			src = file
		default:
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "Send the image as the body (Content-Type image/png, image/jpeg, image/gif or image/webp) or as the form field \"avatar\"."))
			return
		}
		var image []byte
		if err == nil {
			image, err = io.ReadAll(io.LimitReader(src, limit+1))
		}
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe) || len(image) > limit:
			s.writeError(w, r, chat.Errorf(chat.ETooLarge, "An avatar may be at most %d MiB.", limit>>20))
			return
		case err != nil:
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "The image could not be read: send it as the body or as the form field \"avatar\"."))
			return
		}
		u, err := s.Chats.SetAvatar(r.Context(), identityFrom(r.Context()), image)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, profileBody(u))
	}
}

func (s *server) handleDeleteAvatar() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.Chats.DeleteAvatar(r.Context(), identityFrom(r.Context()))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, profileBody(u))
	}
}

// handleProfiles answers GET /users/profiles?u=name&u=other: the profiles
// of those users (unknown and deleted names are left out).
func (s *server) handleProfiles() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		names := r.URL.Query()["u"]
		users, err := s.Chats.Profiles(r.Context(), names)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := wire.ProfileList{Users: make([]wire.Profile, len(users))}
		for i, u := range users {
			out.Users[i] = wire.ProfileOf(u)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleAvatar serves a user's avatar to anyone signed in, as thumbnails
// are served: the server's own re-encoded image, inline, sandboxed,
// never sniffed. Its URL carries the avatar's version (?v=), so it may be
// cached for long.
func (s *server) handleAvatar() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.Chats.Avatar(r.Context(), pathParam(r, "username"))
		if err != nil {
			if chat.ErrorCode(err) == chat.ENotFound {
				err = chat.Errorf(chat.ENotFound, "No such avatar.")
			}
			s.writeError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", fileCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "private, max-age=86400")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Content-Type", a.MimeType)
		h.Set("Content-Disposition", "inline")
		h.Set("ETag", `"`+strconv.FormatInt(a.UpdatedAt.UnixMilli(), 10)+`"`)
		http.ServeContent(w, r, "", a.UpdatedAt, strings.NewReader(string(a.Image)))
	}
}

func (s *server) handleSetNotify() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, f map[string][]string) (any, error) {
		sum, err := s.Chats.SetNotify(r.Context(), id, c, field(f, "notify"))
		return s.summaryBody(sum), err
	})
}
