package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
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
	case chat.EBadCertificate, chat.EEnvelopesMismatch, chat.EE2EERequired:
		return http.StatusBadRequest
	case chat.EIdentityExists, chat.EEpochConflict, chat.EStaleEpoch:
		return http.StatusConflict
	case chat.ENoEnvelope, chat.ENoBackup:
		return http.StatusNotFound
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

// writeError answers with err's status and sentence. Only internal errors
// are logged as errors, with the request they came from.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := chat.ErrorCode(err)
	var ce *chat.Error
	if errors.As(err, &ce) && ce.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ce.RetryAfter+time.Second-1)/time.Second)))
	}
	switch code {
	case chat.EUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mapsim-chat"`)
	case chat.EInternal:
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case chat.EUnavailable:
		s.Log.Warn("request failed: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, statusFor(code), wire.ErrorBody{Detail: chat.ErrorMessage(err), Code: code})
}

// maxFormBytes bounds the body of a form or JSON request.
const maxFormBytes = 64 << 10

// readForm reads a form-encoded, multipart or JSON body into string fields
// (the first value of each).
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	fields, err := readFields(w, r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(fields))
	for k, v := range fields {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out, nil
}

// readFields reads a form-encoded, multipart or JSON body. A JSON field may
// be a string, a whole number, a boolean or a list of strings; anything else
// is refused, so a field is never silently misread. A form field may repeat.
func readFields(w http.ResponseWriter, r *http.Request) (map[string][]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	tooBig := func(err error) bool {
		var mbe *http.MaxBytesError
		return errors.As(err, &mbe)
	}
	fields := make(map[string][]string)
	switch mt {
	case "application/json":
		// The whole body is read and must be one value: a Decoder would
		// stop after the first and ignore whatever follows it.
		body, err := io.ReadAll(r.Body)
		if tooBig(err) {
			return nil, chat.Errorf(chat.ETooLarge, "The request body is larger than %d bytes.", maxFormBytes)
		}
		var raw map[string]json.RawMessage
		if err != nil || json.Unmarshal(body, &raw) != nil || raw == nil { // raw is nil for "null"
			return nil, chat.Errorf(chat.EInvalid, "The body is not a JSON object.")
		}
		for k, v := range raw {
			var (
				str  string
				num  json.Number
				b    bool
				list []*string // nil for a null item
			)
			switch {
			case string(v) == "null":
			case json.Unmarshal(v, &str) == nil:
				fields[k] = []string{str}
			case json.Unmarshal(v, &b) == nil:
				fields[k] = []string{strconv.FormatBool(b)}
			case json.Unmarshal(v, &num) == nil:
				if _, err := num.Int64(); err != nil {
					return nil, chat.Errorf(chat.EInvalid, "Field %q must be a whole number.", chat.Clip(k, 32))
				}
				fields[k] = []string{num.String()}
			case json.Unmarshal(v, &list) == nil && !slices.Contains(list, nil):
				fields[k] = make([]string, len(list))
				for i, item := range list {
					fields[k][i] = *item
				}
			default:
				return nil, chat.Errorf(chat.EInvalid, "Field %q must be a string, a number or a list of strings.", chat.Clip(k, 32))
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
			if tooBig(err) {
				return nil, chat.Errorf(chat.ETooLarge, "The request body is larger than %d bytes.", maxFormBytes)
			}
			return nil, chat.Errorf(chat.EInvalid, "The form could not be read.")
		}
		for k, v := range r.PostForm {
			fields[k] = v
		}
	default:
		return nil, chat.Errorf(chat.EInvalid, "Send the body as application/json or application/x-www-form-urlencoded.")
	}
	return fields, nil
}
