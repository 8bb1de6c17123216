package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/testutil/mariadbtest"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the real command, so that exit codes can be
	// checked: MAPSIM_CHAT_AS_MAIN=1 runs main() instead of the tests.
	if os.Getenv("MAPSIM_CHAT_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	mariadbtest.Main(m)
}

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// listening receives the URL from the first "listening on" line.
	listening chan string
	sent      bool
}

var listenLine = regexp.MustCompile(`listening on (https?://\S+)`)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent && b.listening != nil {
		if m := listenLine.FindSubmatch(b.buf.Bytes()); m != nil {
			b.sent = true
			b.listening <- string(m[1])
		}
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is one in-process run of the server.
type testServer struct {
	tb     testing.TB
	URL    string
	env    map[string]string
	stdout *syncBuffer
	logs   *syncBuffer
	// hangup is the server's SIGHUP: a test sends on it instead of
	// signalling the test process.
	hangup chan os.Signal
	// client makes the test's requests and WebSocket handshakes; with
	// TLS_CERT_FILE it trusts that certificate, as it was at the start.
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// backend is a database configuration the end-to-end tests run against.
type backend struct {
	name string
	env  func(t testing.TB) map[string]string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) map[string]string {
			return map[string]string{"DATA_DIR": t.TempDir()}
		}},
		{"mariadb", func(t testing.TB) map[string]string {
			o := mariadbtest.Options(t)
			return map[string]string{"DATA_DIR": t.TempDir(), "DB_HOST": o.Host, "DB_PORT": o.Port, "DB_NAME": o.Name, "DB_USER": o.User}
		}},
	}
}

// baseEnv fills in what every test server needs: a loopback port, temp
// folders and a fixed SECRET_KEY unless the test sets one.
func baseEnv(t testing.TB, env map[string]string) map[string]string {
	out := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0",
		"UPLOAD_DIR":  t.TempDir(),
		"SECRET_KEY":  "TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5",
		"LOG_FORMAT":  "text",
		// Offline is announced at once unless a test sets a grace.
		"PRESENCE_GRACE": "0",
		// Tests register many users from 127.0.0.1;
		// TestRegistrationPerAddress checks the default limit.
		"REGISTRATION_PER_HOUR": "0",
	}
	if out["DATA_DIR"] == "" {
		out["DATA_DIR"] = t.TempDir()
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// withoutRateLimits lifts the per-user and per-connection rate limits, for
// tests and benchmarks that push many messages on purpose.
func withoutRateLimits(env map[string]string) map[string]string {
	for _, k := range []string{"RATE_LIMIT_MESSAGES_PER_SECOND", "RATE_LIMIT_MESSAGES_BURST", "RATE_LIMIT_FRAMES_PER_SECOND", "RATE_LIMIT_FRAMES_BURST",
		"UPLOAD_RATE_PER_MINUTE", "UPLOAD_RATE_BURST"} {
		env[k] = "1000000"
	}
	return env
}

// MustStart starts the server through run() and waits until it listens.
func MustStart(t testing.TB, env map[string]string) *testServer {
	t.Helper()
	s, err := start(t, env)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return s
}

func start(t testing.TB, env map[string]string) (*testServer, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{tb: t, env: env, cancel: cancel, done: make(chan error, 1), hangup: make(chan os.Signal, 1), client: http.DefaultClient}
	out := &syncBuffer{listening: make(chan string, 1)}
	s.stdout, s.logs = out, &syncBuffer{}
	if f := env["TLS_CERT_FILE"]; f != "" {
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(f); err != nil || !pool.AppendCertsFromPEM(pem) {
			cancel()
			return nil, fmt.Errorf("TLS_CERT_FILE %s holds no certificate a client can trust (%v)", f, err)
		}
		s.client = tlsClient(pool)
	}
	getenv := func(k string) string { return env[k] }
	go func() {
		s.done <- run(ctx, []string{"mapsim-chat", "serve"}, getenv, strings.NewReader(""), out, s.logs, s.hangup)
	}()
	select {
	case s.URL = <-out.listening:
	case err := <-s.done:
		cancel()
		return nil, fmt.Errorf("%w\nlogs:\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		return nil, fmt.Errorf("server did not listen within 60 s\nlogs:\n%s", s.logs.String())
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	return s, nil
}

// Stop shuts the server down and waits for run to return.
func (s *testServer) Stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop within 30 s")
	}
}

// tlsClient is an HTTP client that trusts only the certificates in pool.
func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// waitLog waits until the server's logs hold substr at least n times.
func (s *testServer) waitLog(t testing.TB, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(s.logs.String(), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the logs do not say %q %d times within 15 s:\n%s", substr, n, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiResponse is a decoded JSON answer.
type apiResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r apiResponse) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// call makes an API request. body may be url.Values (form) or anything
// else (JSON).
func (s *testServer) call(t testing.TB, method, path, token string, body any) apiResponse {
	t.Helper()
	return s.callWith(t, method, path, token, nil, body)
}

// callWith is call with extra request headers.
func (s *testServer) callWith(t testing.TB, method, path, token string, header http.Header, body any) apiResponse {
	t.Helper()
	var (
		rd    io.Reader
		ctype string
	)
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case rawBody: // as it is; the caller sets Content-Type
		rd = strings.NewReader(string(b))
	default:
		j, _ := json.Marshal(b)
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := apiResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	json.Unmarshal(raw, &out.Body)
	return out
}

// MustUser registers and logs in a user and returns the access token.
func (s *testServer) MustUser(t testing.TB, name string) string {
	t.Helper()
	pw := testPassword
	if r := s.call(t, "POST", "/register/", "", url.Values{"username": {name}, "password": {pw}}); r.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", name, r.Status, r.Raw)
	}
	return s.MustLogin(t, name, pw)
}

func (s *testServer) MustLogin(t testing.TB, name, pw string) string {
	t.Helper()
	r := s.call(t, "POST", "/login/", "", map[string]string{"username": name, "password": pw})
	if r.Status != http.StatusOK || r.str("access_token") == "" || r.str("token_type") != "bearer" {
		t.Fatalf("login %s: %d %s", name, r.Status, r.Raw)
	}
	return r.str("access_token")
}

// wsClient is a WebSocket connection that reads frames in the background.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan map[string]any
	closed chan error
}

// MustDial opens a WebSocket with a fresh ticket.
func (s *testServer) MustDial(t testing.TB, token, chatName string) *wsClient {
	t.Helper()
	r := s.call(t, "POST", "/ws-ticket/", token, nil)
	if r.Status != http.StatusOK || r.str("ticket") == "" {
		t.Fatalf("ws-ticket: %d %s", r.Status, r.Raw)
	}
	c, err := s.dial(t, "ticket="+url.QueryEscape(r.str("ticket"))+"&chat_name="+url.QueryEscape(chatName), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func (s *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws?" + query
}

func (s *testServer) dial(t testing.TB, query string, header http.Header) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, s.wsURL(query), &websocket.DialOptions{HTTPHeader: header, HTTPClient: s.client})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (status %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn, frames: make(chan map[string]any, 100000), closed: make(chan error, 1)}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.closed <- err
				close(c.frames)
				return
			}
			var f map[string]any
			if json.Unmarshal(data, &f) != nil {
				f = map[string]any{"type": "<not json>", "raw": string(data)}
			}
			c.frames <- f
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return c, nil
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	data, _ := json.Marshal(v)
	c.sendRaw(websocket.MessageText, data)
}

func (c *wsClient) sendRaw(typ websocket.MessageType, data []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, typ, data); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

// next returns the next frame that satisfies match, skipping others, or
// fails the test after 15 s.
func (c *wsClient) next(match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting for a frame: %v", <-c.closed)
			}
			if match(f) {
				return f
			}
		case <-deadline:
			c.t.Fatalf("no matching frame within 15 s")
		}
	}
}

// nextType returns the next frame of a type.
func (c *wsClient) nextType(typ string) map[string]any {
	c.t.Helper()
	return c.next(func(f map[string]any) bool { return f["type"] == typ })
}

// closeStatus waits for the connection to end and returns its close code.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return websocket.CloseStatus(<-c.closed)
			}
		case <-time.After(30 * time.Second):
			c.t.Fatalf("connection still open after 30 s")
		}
	}
}

func num(f map[string]any, key string) int64 {
	v, _ := f[key].(float64)
	return int64(v)
}

// testPassword is every test user's password.
const testPassword = "staple-Horse-battery-42"
