package e2eeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// API calls the server's end-to-end encryption endpoints (E2EE.md, "The
// API") with a bearer token. It holds no keys: what it sends is public or
// already encrypted.
type API struct {
	// Base is the server's address, "https://chat.example.org", without a
	// trailing slash.
	Base string
	// Token is the access token from /login/.
	Token string
	// HTTP makes the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is a refusal from the server: its status and its {"detail",
// "code"} body.
type APIError struct {
	Method, Path string
	Status       int
	Code, Detail string
	// Current is the epoch the server names in a 409 epoch_conflict.
	Current uint32
}

func (e *APIError) Error() string {
	detail := e.Detail
	if detail == "" {
		detail = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, detail)
}

// IsStatus reports whether err is an APIError with that status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// maxAnswer bounds what is read of an answer: the largest is a page of 500
// backup items or a chat's device list, well under it.
const maxAnswer = 8 << 20

// Do sends body (JSON, when not nil) and decodes the answer into out (when
// not nil). A status of 300 or more is an *APIError.
func (a *API) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("e2eeclient: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return fmt.Errorf("e2eeclient: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	client := a.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("e2eeclient: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("e2eeclient: %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Detail  string `json:"detail"`
			Code    string `json:"code"`
			Current uint32 `json:"current"`
		}
		json.Unmarshal(raw, &e)
		p := path
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return &APIError{Method: method, Path: p, Status: resp.StatusCode, Code: e.Code, Detail: e.Detail, Current: e.Current}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("e2eeclient: %s %s: the answer is not the expected JSON: %w", method, path, err)
	}
	return nil
}

// UserKeys is GET /keys/users/{username}'s answer, and one member in GET
// /chats/{chat}/devices.
type UserKeys struct {
	Username string          `json:"username"`
	Identity *e2ee.PublicKey `json:"identity"`
	Devices  []DeviceInfo    `json:"devices"`
}

// DeviceInfo is a published device with what the server adds to it.
type DeviceInfo struct {
	e2ee.Device
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	RevokedAt string `json:"revoked_at"`
}

// UnmarshalJSON decodes the device and the server's fields beside it; the
// embedded Device's own UnmarshalJSON would otherwise swallow them.
func (d *DeviceInfo) UnmarshalJSON(data []byte) error {
	if err := json.Unmarshal(data, &d.Device); err != nil {
		return err
	}
	var extra struct {
		Name      string `json:"name"`
		CreatedAt string `json:"created_at"`
		RevokedAt string `json:"revoked_at"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return err
	}
	d.Name, d.CreatedAt, d.RevokedAt = extra.Name, extra.CreatedAt, extra.RevokedAt
	return nil
}

// EpochState is GET /chats/{chat}/epochs's answer.
type EpochState struct {
	Current uint32 `json:"current"`
	Min     uint32 `json:"min"`
	Stale   bool   `json:"stale"`
}

// EnvelopeAnswer is GET /chats/{chat}/epochs/{n}?device=ID's answer.
type EnvelopeAnswer struct {
	Chat         string        `json:"chat"`
	Epoch        uint32        `json:"epoch"`
	Sender       string        `json:"sender"`
	SenderDevice string        `json:"sender_device"`
	Envelope     e2ee.Envelope `json:"envelope"`
}

// backupItemsPage is GET /keys/backup/room-keys's answer. Items stay raw:
// each is decoded twice, for its id and as an e2ee.RoomKeyBackup.
type backupItemsPage struct {
	Items   []json.RawMessage `json:"items"`
	HasMore bool              `json:"has_more"`
}

// UserKeys fetches a user's identity key and live devices.
func (a *API) UserKeys(ctx context.Context, username string) (UserKeys, error) {
	var out UserKeys
	err := a.Do(ctx, http.MethodGet, "/keys/users/"+url.PathEscape(username), nil, &out)
	return out, err
}

// ChatDevices fetches the members of an encrypted chat with their keys.
func (a *API) ChatDevices(ctx context.Context, chat string) ([]UserKeys, error) {
	var raw json.RawMessage
	if err := a.Do(ctx, http.MethodGet, "/chats/"+url.PathEscape(chat)+"/devices", nil, &raw); err != nil {
		return nil, err
	}
	// The answer is the list of members, bare or as {"members": [...]}.
	var members []UserKeys
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, fmt.Errorf("e2eeclient: the devices of %s: %w", chat, err)
		}
		return members, nil
	}
	var out struct {
		Members []UserKeys `json:"members"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("e2eeclient: the devices of %s: %w", chat, err)
	}
	return out.Members, nil
}

// Epochs fetches a chat's epoch state.
func (a *API) Epochs(ctx context.Context, chat string) (EpochState, error) {
	var out EpochState
	err := a.Do(ctx, http.MethodGet, "/chats/"+url.PathEscape(chat)+"/epochs", nil, &out)
	return out, err
}

// Envelope fetches this device's envelope of a chat's epoch.
func (a *API) Envelope(ctx context.Context, chat string, epoch uint32, device string) (EnvelopeAnswer, error) {
	var out EnvelopeAnswer
	err := a.Do(ctx, http.MethodGet, "/chats/"+url.PathEscape(chat)+"/epochs/"+strconv.FormatUint(uint64(epoch), 10)+"?device="+url.QueryEscape(device), nil, &out)
	return out, err
}

// StartEpoch posts a new epoch's envelopes.
func (a *API) StartEpoch(ctx context.Context, chat string, epoch uint32, senderDevice string, envelopes []e2ee.Envelope) error {
	body := map[string]any{"epoch": epoch, "sender_device": senderDevice, "envelopes": envelopes}
	return a.Do(ctx, http.MethodPost, "/chats/"+url.PathEscape(chat)+"/epochs", body, nil)
}

// BackupRoomKeys adds room-key items to the backup, at most 500 a call.
func (a *API) BackupRoomKeys(ctx context.Context, items []e2ee.RoomKeyBackup) error {
	for len(items) > 0 {
		n := min(len(items), 500)
		if err := a.Do(ctx, http.MethodPost, "/keys/backup/room-keys", map[string]any{"items": items[:n]}, nil); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// BackupRoomKeyItems fetches every room-key item of the backup.
func (a *API) BackupRoomKeyItems(ctx context.Context) ([]e2ee.RoomKeyBackup, error) {
	var items []e2ee.RoomKeyBackup
	var after int64
	for {
		var page backupItemsPage
		if err := a.Do(ctx, http.MethodGet, "/keys/backup/room-keys?limit=500&after="+strconv.FormatInt(after, 10), nil, &page); err != nil {
			return nil, err
		}
		for _, raw := range page.Items {
			var id struct {
				ID int64 `json:"id"`
			}
			var item e2ee.RoomKeyBackup
			if err := json.Unmarshal(raw, &id); err != nil {
				return nil, fmt.Errorf("e2eeclient: a backup item: %w", err)
			}
			if err := json.Unmarshal(raw, &item); err != nil {
				return nil, fmt.Errorf("e2eeclient: backup item %d: %w", id.ID, err)
			}
			items = append(items, item)
			after = max(after, id.ID)
		}
		if !page.HasMore || len(page.Items) == 0 {
			return items, nil
		}
	}
}
