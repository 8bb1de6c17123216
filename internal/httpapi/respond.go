package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// statusFor maps an error code to its HTTP status: the one place that does.
func statusFor(code string) int {
	switch code {
	case chat.EInvalid:
		return http.StatusBadRequest
	case chat.EUnauthorized:
		return http.StatusUnauthorized
	case chat.EForbidden:
		return http.StatusForbidden
	case chat.ENotFound:
		return http.StatusNotFound
	case chat.EConflict:
		return http.StatusConflict
	case chat.ETooMany:
		return http.StatusTooManyRequests
	case chat.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case chat.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeJSON writes v with a status. API answers are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errorBody is every error answer: {"detail", "code"}.
type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// writeError answers with err's status and sentence. Only internal errors
// are logged as errors, with the request they came from.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := chat.ErrorCode(err)
	var ce *chat.Error
	if errors.As(err, &ce) && ce.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ce.RetryAfter))
	}
	switch code {
	case chat.EUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mapsim-chat"`)
	case chat.EInternal:
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case chat.EUnavailable:
		s.Log.Warn("request failed: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, statusFor(code), errorBody{Detail: chat.ErrorMessage(err), Code: code})
}

// maxFormBytes bounds the body of a form or JSON request.
const maxFormBytes = 64 << 10

// readForm reads a form-encoded, multipart or JSON body into string fields.
// JSON values that are not strings are refused, so a field is never
// silently misread.
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	fields := make(map[string]string)
	switch mt {
	case "application/json":
		var raw map[string]any
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&raw); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, chat.Errorf(chat.ETooLarge, "The request body is larger than %d bytes.", maxFormBytes)
			}
			return nil, chat.Errorf(chat.EInvalid, "The body is not a JSON object.")
		}
		for k, v := range raw {
			switch v := v.(type) {
			case string:
				fields[k] = v
			case nil:
			default:
				return nil, chat.Errorf(chat.EInvalid, "Field %q must be a string.", chat.Clip(k, 32))
			}
		}
	case "application/x-www-form-urlencoded", "multipart/form-data", "":
		var err error
		if mt == "multipart/form-data" {
			err = r.ParseMultipartForm(maxFormBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, chat.Errorf(chat.ETooLarge, "The request body is larger than %d bytes.", maxFormBytes)
			}
			return nil, chat.Errorf(chat.EInvalid, "The form could not be read.")
		}
		for k, v := range r.PostForm {
			if len(v) > 0 {
				fields[k] = v[0]
			}
		}
	default:
		return nil, chat.Errorf(chat.EInvalid, "Send the body as application/json or application/x-www-form-urlencoded.")
	}
	return fields, nil
}
