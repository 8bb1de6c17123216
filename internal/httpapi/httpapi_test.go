package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/chats"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/httpapi"
	"github.com/mapsim/mapsim-chat/internal/hub"
	"github.com/mapsim/mapsim-chat/internal/keys"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
	"github.com/mapsim/mapsim-chat/internal/testutil/servicetest"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// api is the whole HTTP API over real services on a fresh SQLite store.
type api struct {
	*httptest.Server
	logs *lockedBuffer
}

// MustAPI serves the API; trusted lists the proxies whose X-Forwarded-For
// is believed.
func MustAPI(tb testing.TB, trusted ...string) *api {
	tb.Helper()
	return MustAPIAt(tb, nil, trusted...)
}

// MustAPIAt is MustAPI with the auth service reading its time from now
// (nil: the real clock), for tests of expiry.
func MustAPIAt(tb testing.TB, now func() time.Time, trusted ...string) *api {
	tb.Helper()
	w := servicetest.MustWorld(tb)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	messages := delivery.New(delivery.Options{Store: w.Store, Ring: w.Ring, Sequencer: w.Sequencer, Broker: w.Broker, Log: log, MaxMessageBytes: 1000, CommitTimeout: 5 * time.Second})
	cs := chats.New(chats.Options{Store: w.Store, Ring: w.Ring, Sequencer: w.Sequencer, Broker: w.Broker, Log: log, CommitTimeout: 5 * time.Second})
	h := hub.New(hub.Options{
		Messages: messages, Chats: cs, Broker: w.Broker, Log: log,
		Limits:    chat.Limits{MaxMessageBytes: 1000, MessageRate: 10, MessageBurst: 20, FrameRate: 40, FrameBurst: 80, UploadMaxBytes: 1 << 20},
		QueueSize: 256, PingInterval: 25 * time.Second, PongTimeout: time.Minute, WriteTimeout: 10 * time.Second, FrameTimeout: 5 * time.Second,
		SyncPage: 200, TypingTTL: 5 * time.Second, PresenceLimit: 500, BusyWrites: 10000,
	})
	up, err := uploads.New(uploads.Options{Store: w.Store, Ring: w.Ring, Log: log, Dir: tb.TempDir(), MaxFileBytes: 1 << 20, MaxTotalBytes: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	var proxies []netip.Prefix
	for _, p := range trusted {
		proxies = append(proxies, netip.MustParsePrefix(p))
	}
	handler := httpapi.NewServer(httpapi.Deps{
		Auth:     auth.NewService(auth.Options{Store: w.Store, SigningKey: bytes.Repeat([]byte{7}, 32), TokenTTL: time.Hour, Registration: "open", Now: now}),
		Messages: messages, Chats: cs, Hub: h, Uploads: up, Ready: w.Store.Ping, Log: log,
		Keys:  keys.New(keys.Options{Store: w.Store, Ring: w.Ring, Broker: w.Broker, Log: log, MaxMessageBytes: 1000}),
		Web:   fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Mapsim Chat</title>")}},
		Conns: ratelimit.NewConns[string](10), UserConns: ratelimit.NewConns[int64](5), TrustedProxies: proxies, MaxMessageBytes: 1000,
	})
	srv := httptest.NewServer(handler)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return &api{Server: srv, logs: logs}
}

// do sends a request and returns the status, the headers and the body
// decoded as a JSON object (nil if it is not one).
func (a *api) do(tb testing.TB, method, path, token, contentType, body string, header ...string) (int, http.Header, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := a.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return res.StatusCode, res.Header, out
}

// MustLogin registers a user and returns an access token.
func (a *api) MustLogin(tb testing.TB, name string) string {
	tb.Helper()
	form := url.Values{"username": {name}, "password": {"correct horse battery staple"}}.Encode()
	if code, _, body := a.do(tb, "POST", "/register/", "", "application/x-www-form-urlencoded", form); code != http.StatusCreated {
		tb.Fatalf("register %s: %d %v", name, code, body)
	}
	code, _, body := a.do(tb, "POST", "/login", "", "application/x-www-form-urlencoded", form)
	tok, _ := body["access_token"].(string)
	if code != http.StatusOK || tok == "" {
		tb.Fatalf("login %s: %d %v", name, code, body)
	}
	return tok
}

// TestErrorAnswers: every error is {"detail", "code"} with the status its
// code maps to, and the headers that go with it.
func TestErrorAnswers(t *testing.T) {
	a := MustAPI(t)
	alice := a.MustLogin(t, "alice")
	tests := []struct {
		name                    string
		method, path, token, ct string
		body                    string
		status                  int
		code                    string
		header, headerValuePart string
	}{
		{name: "no token", method: "GET", path: "/chats/", status: 401, code: chat.EUnauthorized, header: "WWW-Authenticate", headerValuePart: "Bearer"},
		{name: "a forged token", method: "GET", path: "/chats", token: "eyJhbGciOiJub25lIn0.e30.", status: 401, code: chat.EUnauthorized},
		{name: "no such page", method: "GET", path: "/nowhere", status: 404, code: chat.ENotFound},
		{name: "a wrong method", method: "DELETE", path: "/healthz", status: 405, code: chat.EInvalid},
		{name: "a chat that is not mine", method: "GET", path: "/chats/group:nope", token: alice, status: 403, code: chat.EForbidden},
		{name: "a body that is not JSON", method: "POST", path: "/chats", token: alice, ct: "application/json", body: "{", status: 400, code: chat.EInvalid},
		{name: "a field of the wrong type", method: "POST", path: "/chats", token: alice, ct: "application/json", body: `{"kind":{"x":1}}`, status: 400, code: chat.EInvalid},
		{name: "a body too large", method: "POST", path: "/chats", token: alice, ct: "application/json", body: `{"title":"` + strings.Repeat("x", 70<<10) + `"}`, status: 413, code: chat.ETooLarge},
		{name: "a content type we do not read", method: "POST", path: "/chats", token: alice, ct: "text/plain", body: "kind=group", status: 400, code: chat.EInvalid},
		{name: "a page size out of range", method: "GET", path: "/messages/?chat_id=global&limit=500", token: alice, status: 400, code: chat.EInvalid},
		{name: "a download of nothing", method: "GET", path: "/file/00112233445566778899aabbccddeeff", token: alice, status: 404, code: chat.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := a.do(t, tt.method, tt.path, tt.token, tt.ct, tt.body)
			if status != tt.status || body["code"] != tt.code || body["detail"] == "" {
				t.Fatalf("%d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if tt.header != "" && !strings.Contains(header.Get(tt.header), tt.headerValuePart) {
				t.Fatalf("%s: %q", tt.header, header.Get(tt.header))
			}
			if header.Get("Content-Security-Policy") == "" || header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("security headers missing: %v", header)
			}
		})
	}
}

// TestFieldsInEveryEncoding: a list of members reads the same from a JSON
// list, a repeated form field and one comma-separated value.
func TestFieldsInEveryEncoding(t *testing.T) {
	a := MustAPI(t)
	alice := a.MustLogin(t, "alice")
	a.MustLogin(t, "bob")
	a.MustLogin(t, "carol")
	for i, tt := range []struct{ ct, body string }{
		{"application/json", `{"kind":"group","title":"Ops 1","members":["bob","carol"]}`},
		{"application/x-www-form-urlencoded", "kind=group&title=Ops+2&members=bob&members=carol"},
		{"application/x-www-form-urlencoded", "kind=group&title=Ops+3&members=bob,+carol"},
	} {
		status, _, body := a.do(t, "POST", "/chats/", alice, tt.ct, tt.body)
		members, _ := body["members"].([]any)
		if status != http.StatusCreated || len(members) != 3 {
			t.Fatalf("case %d: %d %v", i, status, body)
		}
	}
}

// TestClientAddress: X-Forwarded-For is believed only from a trusted proxy,
// and then only back to the first hop that is not one; the access log
// names the address and never a token from the query.
func TestClientAddress(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		xff     string
		want    string
	}{
		{"from anyone, ignored", nil, "203.0.113.9", "client_ip=127.0.0.1"},
		{"from a trusted proxy", []string{"127.0.0.1/32"}, "203.0.113.9", "client_ip=203.0.113.9"},
		{"spoofed behind a trusted proxy", []string{"127.0.0.1/32", "10.0.0.0/8"}, "198.51.100.7, 203.0.113.9, 10.1.2.3", "client_ip=203.0.113.9"},
		{"garbage", []string{"127.0.0.1/32"}, "not-an-ip", "client_ip=127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := MustAPI(t, tt.trusted...)
			a.do(t, "GET", "/healthz?token=sekrit-token&ticket=sekrit-ticket", "", "", "", "X-Forwarded-For", tt.xff)
			logs := a.logs.String()
			if !strings.Contains(logs, tt.want) {
				t.Fatalf("log lacks %s:\n%s", tt.want, logs)
			}
			if strings.Contains(logs, "sekrit") {
				t.Fatalf("a secret from the query reached the log:\n%s", logs)
			}
		})
	}
}

// TestHealth answers liveness and readiness, to GET and to HEAD (which
// some load balancers and probes send).
func TestHealth(t *testing.T) {
	a := MustAPI(t)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz/": "ready"} {
		if status, _, body := a.do(t, "GET", path, "", "", ""); status != http.StatusOK || body["status"] != want {
			t.Fatalf("%s: %d %v", path, status, body)
		}
		res, err := a.Client().Head(a.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || len(raw) != 0 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("HEAD %s: %d %q %q", path, res.StatusCode, res.Header.Get("Content-Type"), raw)
		}
	}
}
