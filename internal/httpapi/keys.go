package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// End-to-end encryption's API (E2EE.md "The API"): the server stores and
// hands out public keys, envelopes and backups; it checks their shapes and
// signatures with internal/e2ee, never their contents.

// maxEpochBytes bounds the body of POST /chats/{chat}/epochs: up to
// MaxEnvelopesPerEpoch envelopes of about 400 bytes each.
const maxEpochBytes = 1 << 20

// readJSON decodes a JSON body of at most limit bytes into v. A body too
// large is ETooLarge; one that is not JSON, or whose fields have the
// wrong type or bad base64url, is EInvalid with a sentence that names the
// field.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return chat.Errorf(chat.EInvalid, "Send the body as application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return chat.Errorf(chat.ETooLarge, "The request body is larger than %d bytes.", limit)
	}
	if err != nil {
		return chat.Errorf(chat.EInvalid, "The body could not be read.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var ce *chat.Error
		switch {
		case errors.As(err, &ce):
			return keys.Invalid(err, chat.EInvalid)
		case errors.As(err, &te) && te.Field != "":
			return chat.Errorf(chat.EInvalid, "Field %q must be a %s.", chat.Clip(te.Field, 64), jsonKind(te.Type.Kind().String()))
		}
		return chat.Errorf(chat.EInvalid, "The body is not a JSON object of the expected shape.")
	}
	if dec.More() {
		return chat.Errorf(chat.EInvalid, "The body holds more than one JSON value.")
	}
	return nil
}

// jsonKind names a Go kind as JSON would.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "JSON object"
	}
	return "number"
}

func (s *server) handlePutIdentity() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// PublicKey's own UnmarshalJSON takes the object as a key, so
		// "replace" is read apart.
		var raw json.RawMessage
		if err := readJSON(w, r, maxFormBytes, &raw); err != nil {
			s.writeError(w, r, err)
			return
		}
		var key e2ee.PublicKey
		if err := json.Unmarshal(raw, &key); err != nil {
			s.writeError(w, r, keys.Invalid(err, chat.EInvalid))
			return
		}
		var flags struct {
			Replace bool `json:"replace"`
		}
		if err := json.Unmarshal(raw, &flags); err != nil {
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "Field \"replace\" must be a boolean."))
			return
		}
		id := identityFrom(r.Context())
		out, err := s.Keys.PublishIdentity(r.Context(), id, key, flags.Replace)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if out == chat.IdentityCreated {
			status = http.StatusCreated
		}
		writeJSON(w, status, wire.FromPublicKey(chat.PublicKey{Alg: key.Alg, Pub: key.Pub}))
	}
}

func (s *server) handlePublishDevice() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var raw json.RawMessage
		if err := readJSON(w, r, maxFormBytes, &raw); err != nil {
			s.writeError(w, r, err)
			return
		}
		var d e2ee.Device
		if err := json.Unmarshal(raw, &d); err != nil {
			s.writeError(w, r, keys.Invalid(err, chat.EInvalid))
			return
		}
		var extra struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &extra); err != nil {
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "Field \"name\" must be a string."))
			return
		}
		dev, created, err := s.Keys.PublishDevice(r.Context(), identityFrom(r.Context()), d, extra.Name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, wire.FromDevice(dev))
	}
}

func (s *server) handleRevokeDevice() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.Keys.RevokeDevice(r.Context(), identityFrom(r.Context()), pathParam(r, "device")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleUserKeys() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		all := false
		switch v := r.URL.Query().Get("all"); v {
		case "", "0", "false":
		case "1", "true":
			all = true
		default:
			s.writeError(w, r, chat.Errorf(chat.EInvalid, "all must be 1 or 0."))
			return
		}
		k, err := s.Keys.UserKeys(r.Context(), identityFrom(r.Context()), pathParam(r, "username"), all)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.FromKeys(k))
	}
}

func (s *server) handleChatDevices() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, _ chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		members, err := s.Keys.ChatKeys(r.Context(), c)
		if err != nil {
			return nil, err
		}
		out := wire.ChatDevices{Chat: c.Name, Members: make([]wire.UserKeys, len(members))}
		for i, m := range members {
			out.Members[i] = wire.FromKeys(m)
		}
		return out, nil
	})
}

func (s *server) handleEpochState() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, _ chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		return s.Keys.Epoch(r.Context(), c)
	})
}

func (s *server) handleStartEpoch() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.chatFrom(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var body struct {
			Epoch        int64           `json:"epoch"`
			SenderDevice string          `json:"sender_device"`
			Envelopes    []e2ee.Envelope `json:"envelopes"`
		}
		if err := readJSON(w, r, maxEpochBytes, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		err = s.Keys.StartEpoch(r.Context(), identityFrom(r.Context()), c, keys.StartRequest{
			Epoch: body.Epoch, SenderDevice: body.SenderDevice, Envelopes: body.Envelopes,
		})
		var conflict *keys.ConflictError
		if errors.As(err, &conflict) {
			writeJSON(w, http.StatusConflict, wire.EpochConflict{Detail: conflict.Err.Message, Code: conflict.Err.Code, Current: conflict.Current})
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, wire.EpochStarted{Epoch: body.Epoch})
	}
}

// envelopeBody answers GET /chats/{chat}/epochs/{n}.
type envelopeBody struct {
	Chat         string        `json:"chat"`
	Epoch        int64         `json:"epoch"`
	Sender       string        `json:"sender"`
	SenderDevice string        `json:"sender_device"`
	Envelope     e2ee.Envelope `json:"envelope"`
}

func (s *server) handleEnvelope() http.HandlerFunc {
	return s.chatHandler(func(r *http.Request, id chat.Identity, c chat.Chat, _ map[string][]string) (any, error) {
		n, err := strconv.ParseInt(pathParam(r, "epoch"), 10, 64)
		if err != nil {
			return nil, chat.Errorf(chat.EInvalid, "The epoch must be a whole number from 1 to 4294967295.")
		}
		env, err := s.Keys.Envelope(r.Context(), id, c, n, r.URL.Query().Get("device"))
		if err != nil {
			return nil, err
		}
		return envelopeBody{Chat: c.Name, Epoch: n, Sender: env.Epoch.SenderName, SenderDevice: env.Epoch.SenderDevice, Envelope: env.Envelope}, nil
	})
}

func (s *server) handlePutBackup() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var h e2ee.BackupHeader
		if err := readJSON(w, r, maxFormBytes, &h); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Keys.PutBackup(r.Context(), identityFrom(r.Context()), h); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, h)
	}
}

func (s *server) handleGetBackup() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := s.Keys.Backup(r.Context(), identityFrom(r.Context()))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func (s *server) handlePutBackupItems() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Items []e2ee.RoomKeyBackup `json:"items"`
		}
		if err := readJSON(w, r, maxFormBytes, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Keys.PutBackupItems(r.Context(), identityFrom(r.Context()), body.Items); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.Stored{Stored: len(body.Items)})
	}
}

func (s *server) handleBackupItems() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var after int64
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.writeError(w, r, chat.Errorf(chat.EInvalid, "after must be an item id (a whole number, 0 or more)."))
				return
			}
			after = n
		}
		limit := keys.MaxBackupPage
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > keys.MaxBackupPage {
				s.writeError(w, r, chat.Errorf(chat.EInvalid, "limit must be a whole number from 1 to %d.", keys.MaxBackupPage))
				return
			}
			limit = n
		}
		out, err := s.Keys.BackupItems(r.Context(), identityFrom(r.Context()), after, limit)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}
