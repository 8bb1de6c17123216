package httpapi

import (
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/files"
	"github.com/mapsim/mapsim-chat/internal/uploads"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// formOverhead is what a multipart form may add around the file: boundaries,
// part headers and the small fields.
const formOverhead = 1 << 20

// handleUpload streams a multipart "file" into the upload folder. The chat
// comes from chat_id in the URL or a form field before the file (global by
// default); the asker must be a member. The upload may take as long as it
// needs, as long as bytes keep arriving: it is stopped only when none
// arrive for UploadIdleTimeout.
func (s *server) handleUpload() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		// Refused before a byte of the body is read.
		if err := s.Uploads.Admit(id.UserID); err != nil {
			s.writeError(w, r, err)
			return
		}
		if s.UploadIdleTimeout > 0 {
			r.Body = newIdleReader(r.Body, http.NewResponseController(w), s.UploadIdleTimeout)
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.Uploads.MaxFileBytes()+formOverhead)
		mr, err := r.MultipartReader()
		if err != nil {
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "Send the file as multipart/form-data with a \"file\" field."))
			return
		}
		chatRef := r.URL.Query().Get("chat_id")
		var (
			saved    *chat.File
			usedChat chat.Chat
		)
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				s.discard(r, saved)
				var ce *chat.Error
				if !errors.As(err, &ce) {
					err = chat.Errorf(chat.EInvalid, "The form could not be read to its end.")
				}
				s.writeError(w, r, err)
				return
			}
			switch part.FormName() {
			case "chat_id":
				v, _ := io.ReadAll(io.LimitReader(part, 128))
				ref := strings.TrimSpace(string(v))
				if saved != nil && ref != usedChat.Name && ref != strconv.FormatInt(usedChat.ID, 10) {
					s.discard(r, saved)
					s.writeError(w, r, chat.Errorf(chat.EInvalid, "Put chat_id before the file in the form (or in the URL), so the file goes to that chat."))
					return
				}
				chatRef = ref
			case "file":
				if saved != nil {
					s.discard(r, saved)
					s.writeError(w, r, chat.Errorf(chat.EInvalid, "Send one file per upload."))
					return
				}
				c, err := s.Chats.Resolve(r.Context(), id, chatRef)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				f, err := s.Uploads.Save(r.Context(), uploads.Upload{
					Chat: c, UploaderID: id.UserID, Name: part.FileName(), DeclaredType: part.Header.Get("Content-Type"), Body: part,
				})
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				saved, usedChat = &f, c
			}
			part.Close()
		}
		if saved == nil {
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "The form has no \"file\" field."))
			return
		}
		ref := wire.FromFile(*saved)
		writeJSON(w, http.StatusCreated, wire.Uploaded{
			FileID: ref.ID, FileURL: ref.URL, ThumbnailURL: ref.ThumbnailURL, Name: saved.Name, Size: saved.Size,
			MimeType: saved.MimeType, ChatID: usedChat.ID, ChatName: usedChat.Name, Width: saved.Width, Height: saved.Height,
		})
	}
}

// idleReader is an upload's body held to an idle timeout: each read may
// wait that long for bytes, and no more, however long the whole upload
// takes. Once the body has ended it clears the deadline, so that the work
// after it (the scan's verdict, the janitor) is not cut short.
type idleReader struct {
	body io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	// ok is false when the connection has no deadlines to set (not a
	// network connection): the body is read as it is.
	ok bool
}

func newIdleReader(body io.ReadCloser, rc *http.ResponseController, idle time.Duration) *idleReader {
	ok := rc.SetReadDeadline(time.Now().Add(idle)) == nil
	return &idleReader{body: body, rc: rc, idle: idle, ok: ok}
}

func (r *idleReader) Read(p []byte) (int, error) {
	if !r.ok {
		return r.body.Read(p)
	}
	r.rc.SetReadDeadline(time.Now().Add(r.idle))
	n, err := r.body.Read(p)
	switch {
	case err == io.EOF:
		r.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = chat.Errorf(chat.EInvalid, "The upload stalled: nothing arrived for %d seconds, so it was stopped and nothing was stored. Try again.",
			int64((r.idle+time.Second-1)/time.Second))
	}
	return n, err
}

func (r *idleReader) Close() error { return r.body.Close() }

// discard removes a file saved by a request that then failed.
func (s *server) discard(r *http.Request, f *chat.File) {
	if f != nil {
		s.Uploads.Discard(r.Context(), *f)
	}
}

// fileCSP keeps a served file from running anything, even if a browser
// were talked into rendering it as a page.
const fileCSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"

// handleFile serves a file (or its thumbnail) to members of its chat, with
// Range support. Raster images are served inline; everything else, SVG and
// HTML included, as an attachment.
func (s *server) handleFile(thumb bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := pathParam(r, "id")
		d, err := s.Uploads.Download(r.Context(), identityFrom(r.Context()), raw, thumb)
		if err != nil {
			s.downloadFailed(w, r, raw, err)
			return
		}
		defer d.Close()
		s.serveDownload(w, r, raw, d, thumb)
	}
}

// mediaQuery is the query parameter of a media URL that carries its
// token; the access log redacts it.
const mediaQuery = "sig"

// handleMediaURL gives a member of a file's chat a short-lived URL that
// plays an audio or video file in a media element, which cannot send the
// bearer token: the URL is signed for this file, this user and this
// session (auth.Service.MediaToken) and works for auth.MediaTTL.
func (s *server) handleMediaURL() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := identityFrom(r.Context())
		raw := pathParam(r, "id")
		f, err := s.Uploads.Media(r.Context(), id, raw)
		if err != nil {
			s.downloadFailed(w, r, raw, err)
			return
		}
		token, ttl := s.Auth.MediaToken(id, f.ID)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, wire.MediaURL{
			URL:       wire.FileURL(f.ID) + "/media?" + url.Values{mediaQuery: {token}}.Encode(),
			ExpiresIn: int(ttl / time.Second),
		})
	}
}

// handleMedia serves a file through a media URL (handleMediaURL), with
// Range support and the headers of a download. The token in the query
// stands in for the bearer token; membership of the file's chat is
// checked again on every request, so a member removed from the chat is
// refused at once.
func (s *server) handleMedia() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := pathParam(r, "id")
		fileID, err := hex.DecodeString(raw)
		if err != nil || len(fileID) != 16 {
			s.downloadFailed(w, r, raw, uploads.ErrNoSuchFile)
			return
		}
		id, err := s.Auth.CheckMediaToken(r.Context(), r.URL.Query().Get(mediaQuery), fileID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		d, err := s.Uploads.Download(r.Context(), id, raw, false)
		if err != nil {
			s.downloadFailed(w, r, raw, err)
			return
		}
		defer d.Close()
		s.serveDownload(w, r, raw, d, false)
	}
}

// downloadFailed answers a download that Uploads refused or could not open.
func (s *server) downloadFailed(w http.ResponseWriter, r *http.Request, raw string, err error) {
	switch {
	case errors.Is(err, uploads.ErrExpired):
		writeJSON(w, http.StatusGone, wire.ErrorBody{Detail: chat.ErrorMessage(err), Code: chat.ENotFound})
	case errors.Is(err, uploads.ErrDamaged):
		s.Log.ErrorContext(r.Context(), "stored file is damaged", "file_id", raw, "err", err)
		writeJSON(w, http.StatusInternalServerError, wire.ErrorBody{Detail: "The stored file is damaged and cannot be served.", Code: chat.EInternal})
	default:
		s.writeError(w, r, err)
	}
}

// serveDownload sends an opened file (or its thumbnail), answering Range
// and If-Range, under a sandboxing CSP and nosniff.
func (s *server) serveDownload(w http.ResponseWriter, r *http.Request, raw string, d uploads.Download, thumb bool) {
	f := d.File
	h := w.Header()
	h.Set("Content-Security-Policy", fileCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, max-age=86400")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	name, ctype, inline := f.Name, files.ServeType(f.MimeType), files.IsRaster(f.MimeType)
	if thumb {
		ctype, inline = f.ThumbMimeType, true
		name = thumbName(f.Name, f.ThumbMimeType)
	} else {
		h.Set("ETag", `"`+hex.EncodeToString(f.SHA256)+`"`)
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", files.ContentDisposition(inline, name))
	checked := &checkedReader{ReadSeeker: d.Content}
	http.ServeContent(w, r, "", f.CreatedAt, checked)
	if checked.err != nil {
		// Some of the response may be out; cut the connection so the
		// client sees a failed download, never a short or altered file.
		s.Log.ErrorContext(r.Context(), "stored file failed its integrity check while being served", "file_id", raw, "err", checked.err)
		panic(http.ErrAbortHandler)
	}
}

// checkedReader remembers a read error other than EOF.
type checkedReader struct {
	io.ReadSeeker
	err error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// thumbName names a thumbnail after its file, with the thumbnail's
// extension.
func thumbName(name, mimeType string) string {
	ext := ".jpg"
	if mimeType == "image/png" {
		ext = ".png"
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		name = name[:i]
	}
	return name + "-thumbnail" + ext
}
