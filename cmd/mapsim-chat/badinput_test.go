package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/mapsim/mapsim-chat/internal/keyring"
)

// TestForgedTokens tries every kind of bad token against the REST API and
// the WebSocket; each is refused with 401 and nothing else changes.
func TestForgedTokens(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	good := srv.MustUser(t, "mallory")
	secret, err := keyring.ParseSecret(env["SECRET_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	realKey := keyring.SigningKey(secret)

	// Claims copied from the good token, so only the forged part differs.
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(good, &claims); err != nil {
		t.Fatal(err)
	}
	sign := func(method jwt.SigningMethod, key any, mutate func(jwt.MapClaims)) string {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		if mutate != nil {
			mutate(c)
		}
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	loggedOut := srv.MustLogin(t, "mallory", testPassword)
	if r := srv.call(t, "POST", "/logout/", loggedOut, nil); r.Status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.Status, r.Raw)
	}

	tokens := map[string]string{
		"alg none":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil),
		"wrong key":          sign(jwt.SigningMethodHS256, []byte("an entirely different signing key!"), nil),
		"public default":     sign(jwt.SigningMethodHS256, []byte("secret"), nil),
		"raw SECRET_KEY":     sign(jwt.SigningMethodHS256, secret, nil),
		"HS512 real key":     sign(jwt.SigningMethodHS512, realKey, nil),
		"expired":            sign(jwt.SigningMethodHS256, realKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"no expiry":          sign(jwt.SigningMethodHS256, realKey, func(c jwt.MapClaims) { delete(c, "exp") }),
		"other user's sub":   sign(jwt.SigningMethodHS256, realKey, func(c jwt.MapClaims) { c["sub"] = "999" }),
		"unknown session":    sign(jwt.SigningMethodHS256, realKey, func(c jwt.MapClaims) { c["jti"] = "no-such-session" }),
		"revoked by logout":  loggedOut,
		"garbage":            "not.a.token",
		"tampered signature": good[:len(good)-4] + "AAAA",
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			r := srv.call(t, "GET", "/messages/?chat_id=global", tok, nil)
			if r.Status != http.StatusUnauthorized || r.str("code") != "unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("GET /messages/: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/ws-ticket/", tok, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("POST /ws-ticket/: %d", r.Status)
			}
			if _, err := srv.dial(t, "token="+url.QueryEscape(tok), nil); err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("WebSocket with a forged token: %v", err)
			}
		})
	}
	// The good token still works, so the refusals above were about the forgery.
	if r := srv.call(t, "GET", "/messages/?chat_id=global", good, nil); r.Status != http.StatusOK {
		t.Fatalf("good token: %d %s", r.Status, r.Raw)
	}
	if r := srv.call(t, "GET", "/messages/", "", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.Status)
	}
	// The token in the WebSocket URL never reaches the log.
	if strings.Contains(srv.logs.String(), good[len(good)-20:]) || strings.Contains(srv.logs.String(), loggedOut[len(loggedOut)-20:]) {
		t.Fatal("a token reached the log")
	}
}

// TestTickets: a ticket opens one WebSocket, once.
func TestTickets(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	tok := srv.MustUser(t, "tina")
	r := srv.call(t, "POST", "/ws-ticket", tok, nil)
	ticket := url.QueryEscape(r.str("ticket"))
	if num(r.Body, "expires_in") != 30 {
		t.Fatalf("ticket answer %s", r.Raw)
	}
	c, err := srv.dial(t, "ticket="+ticket, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.nextType("hello")
	if _, err := srv.dial(t, "ticket="+ticket, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("second use of a ticket: %v", err)
	}
	if _, err := srv.dial(t, "ticket=made-up", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("made-up ticket: %v", err)
	}
	if _, err := srv.dial(t, "", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no credentials: %v", err)
	}
	if strings.Contains(srv.logs.String(), r.str("ticket")) {
		t.Fatal("a ticket reached the log")
	}
	// Logging out closes the session's open WebSockets.
	srv.call(t, "POST", "/logout", tok, nil)
	if code := c.closeStatus(); code != websocket.StatusPolicyViolation {
		t.Fatalf("after logout the WebSocket closed with %v, want policy violation", code)
	}
}

// TestOrigin: a browser on another site cannot open a WebSocket; our own
// origin, a listed origin and a client without Origin can.
func TestOrigin(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"ALLOWED_ORIGINS": "https://chat.example.com"}))
	tok := srv.MustUser(t, "olga")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{srv.URL, true},
		{"https://chat.example.com", true},
		{"https://CHAT.example.com:443", true},
		{"https://evil.example.com", false},
		{"http://chat.example.com", false},
		{"null", false},
	}
	for _, c := range cases {
		t.Run(c.origin, func(t *testing.T) {
			h := http.Header{}
			if c.origin != "" {
				h.Set("Origin", c.origin)
			}
			_, err := srv.dial(t, "token="+url.QueryEscape(tok), h)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && (err == nil || !strings.Contains(err.Error(), "403")) {
				t.Fatalf("allowed (or wrong status): %v", err)
			}
		})
	}
}

// TestBadFrames: each bad frame gets an error frame and the connection stays
// open; a frame past the read limit closes only that connection.
func TestBadFrames(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"MAX_MESSAGE_BYTES": "1000"}))
	tok := srv.MustUser(t, "fred")
	other := srv.MustUser(t, "gina")
	c := srv.MustDial(t, tok, "global")
	c.nextType("hello")
	witness := srv.MustDial(t, other, "global")
	witness.nextType("hello")

	cases := []struct {
		name  string
		typ   websocket.MessageType
		frame string
		code  string
	}{
		{"not json", websocket.MessageText, "hello there", "invalid"},
		{"json array", websocket.MessageText, `[1,2,3]`, "invalid"},
		{"two objects", websocket.MessageText, `{"type":"ping"}{"type":"ping"}`, "invalid"},
		{"no type", websocket.MessageText, `{"text":"hi"}`, "invalid"},
		{"unknown type", websocket.MessageText, `{"type":"launch_missiles"}`, "invalid"},
		{"invalid utf-8", websocket.MessageText, "{\"type\":\"text\",\"text\":\"\xff\xfe\"}", "invalid"},
		{"binary frame", websocket.MessageBinary, `{"type":"ping"}`, "invalid"},
		{"empty text", websocket.MessageText, `{"type":"text","text":"   "}`, "invalid"},
		{"control character", websocket.MessageText, `{"type":"text","text":"a\u0000b"}`, "invalid"},
		{"too long", websocket.MessageText, `{"type":"text","text":"` + strings.Repeat("é", 501) + `"}`, "too_large"},
		{"bad client id", websocket.MessageText, `{"type":"text","text":"hi","client_id":"<script>"}`, "invalid"},
		{"long client id", websocket.MessageText, `{"type":"text","text":"hi","client_id":"` + strings.Repeat("a", 65) + `"}`, "invalid"},
		{"no such chat", websocket.MessageText, `{"type":"text","chat_name":"secret-room","text":"hi"}`, "forbidden"},
		{"sync negative", websocket.MessageText, `{"type":"sync","after_id":-5}`, "invalid"},
		{"wrong field type", websocket.MessageText, `{"type":"text","text":42}`, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(tc.typ, []byte(tc.frame))
			f := c.nextType("error")
			if f["code"] != tc.code || f["detail"] == "" {
				t.Fatalf("error frame %v, want code %s", f, tc.code)
			}
			// Still open and answering.
			c.send(map[string]any{"type": "ping"})
			c.nextType("pong")
		})
	}
	// Nothing above was stored or broadcast: the witness's next message is
	// the good one.
	c.send(map[string]any{"type": "text", "text": "exactly 1000 bytes? no, just fine", "client_id": "ok-1"})
	c.nextType("ack")
	if f := witness.nextType("text"); f["client_id"] != "ok-1" {
		t.Fatalf("witness got %v", f)
	}
	// A message of exactly the limit is accepted.
	c.send(map[string]any{"type": "text", "text": strings.Repeat("x", 1000), "client_id": "ok-2"})
	c.nextType("ack")

	// A frame beyond the hard read limit closes this connection with 1009,
	// and only this one.
	c.sendRaw(websocket.MessageText, bytes.Repeat([]byte("x"), 1000*6+5000))
	if code := c.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame closed with %v, want 1009", code)
	}
	witness.send(map[string]any{"type": "ping"})
	witness.nextType("pong")
}

// TestShutdownTellsClientsToReconnect: a graceful stop closes WebSockets
// with 1012 (service restart).
func TestShutdownTellsClientsToReconnect(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	c := srv.MustDial(t, srv.MustUser(t, "sam"), "global")
	c.nextType("hello")
	srv.Stop(t)
	if code := c.closeStatus(); code != websocket.StatusServiceRestart {
		t.Fatalf("closed with %v, want 1012", code)
	}
}

// TestMismatchedSecretKey: a SECRET_KEY that does not match the database
// stops the start with a clear message and a non-zero exit, and creates no
// key version.
func TestMismatchedSecretKey(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "kim")
	c := srv.MustDial(t, tok, "global")
	c.send(map[string]any{"type": "text", "text": "before the key changed", "client_id": "k1"})
	c.nextType("ack")
	srv.Stop(t)

	wrong := map[string]string{}
	for k, v := range env {
		wrong[k] = v
	}
	wrong["SECRET_KEY"] = "b3RoZXItc2VjcmV0LWtleS10aGF0LWlzLWxvbmctZW5vdWdoISE="
	if _, err := start(t, wrong); err == nil || !strings.Contains(err.Error(), "SECRET_KEY does not match this database") {
		t.Fatalf("start with the wrong key: %v", err)
	}

	// The real binary exits non-zero and says why on stderr.
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = []string{"MAPSIM_CHAT_AS_MAIN=1"}
	for k, v := range wrong {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = t.TempDir() // no .env there
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() == 0 {
		t.Fatalf("binary with the wrong key: err %v", err)
	}
	if !strings.Contains(stderr.String(), "SECRET_KEY does not match this database") {
		t.Fatalf("stderr: %s", stderr.String())
	}

	// The right key still reads everything, and only one key version per
	// successful start exists (two so far, plus this start's).
	srv2 := MustStart(t, env)
	h := srv2.call(t, "GET", "/messages/?chat_id=global", tok, nil)
	if msgs, _ := h.Body["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "before the key changed" {
		t.Fatalf("history: %s", h.Raw)
	}
	if !strings.Contains(srv2.logs.String(), "key_versions=2") {
		t.Fatalf("expected 2 key versions after two good starts; logs:\n%s", srv2.logs.String())
	}
}

// TestBadConfig: a bad setting stops the start and names the variable.
func TestBadConfig(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"MAX_MESSAGE_BYTES":      {"MAX_MESSAGE_BYTES": "lots"},
		"SECRET_KEY":             {"SECRET_KEY": "changeme"},
		"SECRET_KEY (published)": {"SECRET_KEY": "k7z2Fz0x+Jz9oZB0X9c0Zp+6Zp0ZP4x1y1z4Y8k="},
		"LISTEN_ADDR":            {"LISTEN_ADDR": "nowhere"},
		// SecureChat's setting: ignored, the server would start on SQLite.
		"DATABASE_URL": {"DATABASE_URL": "mysql://chat:pw@db.internal/chat"},
	} {
		t.Run(name, func(t *testing.T) {
			variable, _, _ := strings.Cut(name, " ")
			e := baseEnv(t, env)
			_, err := start(t, e)
			if err == nil || !strings.Contains(err.Error(), variable) {
				t.Fatalf("err = %v, want one naming %s", err, variable)
			}
			if _, err := os.Stat(filepath.Join(e["DATA_DIR"], "chat.db")); err == nil {
				t.Fatalf("a refused start made a database")
			}
		})
	}
}

// TestFirstRunGeneratesSecret: with no SECRET_KEY the server makes one,
// saves it with mode 0600 and reuses it on the next start.
func TestFirstRunGeneratesSecret(t *testing.T) {
	env := baseEnv(t, nil)
	delete(env, "SECRET_KEY")
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "gen")
	srv.Stop(t)
	info, err := os.Stat(env["DATA_DIR"] + "/secret.key")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v %v", info, err)
	}
	db, _ := os.Stat(env["DATA_DIR"] + "/chat.db")
	if db == nil || db.Mode().Perm() != 0o600 {
		t.Fatalf("chat.db mode: %v", db)
	}
	key, _ := os.ReadFile(env["DATA_DIR"] + "/secret.key")
	if strings.Contains(srv.logs.String(), strings.TrimSpace(string(key))) {
		t.Fatal("the generated key reached the log")
	}
	srv2 := MustStart(t, env)
	if r := srv2.call(t, "GET", "/messages/", tok, nil); r.Status != http.StatusOK {
		t.Fatalf("token after restart with the saved key: %d", r.Status)
	}
}

// TestHealth: liveness, readiness and the security headers.
func TestHealth(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	for _, p := range []string{"/healthz", "/readyz", "/readyz/"} {
		if r := srv.call(t, "GET", p, "", nil); r.Status != 200 {
			t.Fatalf("%s: %d", p, r.Status)
		}
	}
	for _, p := range []string{"/", "/static/index.html"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
	if r := srv.call(t, "GET", "/no/such/page", "", nil); r.Status != 404 || r.str("code") != "not_found" {
		t.Fatalf("404: %d %s", r.Status, r.Raw)
	}
	if r := srv.call(t, "DELETE", "/login/", "", nil); r.Status != 405 {
		t.Fatalf("405: %d %s", r.Status, r.Raw)
	}
	big := strings.Repeat("a", 70<<10)
	if r := srv.call(t, "POST", "/login/", "", url.Values{"username": {"x"}, "password": {big}}); r.Status != 413 {
		t.Fatalf("oversized body: %d %s", r.Status, r.Raw)
	}
}

// TestHostPinning: a page of another site whose DNS name was re-pointed at
// the server (DNS rebinding) sends its own name as Host and as Origin, so
// the Origin check alone would let its WebSocket in. Names the server was
// not told about get 421 on every route but health checks; IP addresses
// and localhost always work, and PUBLIC_URL and ALLOWED_HOSTS add names.
func TestHostPinning(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"PUBLIC_URL": "https://chat.example.com/", "ALLOWED_HOSTS": "lan-chat.home:8443, other.example"}))
	tok := srv.MustUser(t, "rita")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	get := func(host, path string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"192.168.1.20:" + port, http.StatusOK},
		{"chat.example.com", http.StatusOK},
		{"CHAT.example.com:443", http.StatusOK},
		{"lan-chat.home:8443", http.StatusOK},
		{"other.example:" + port, http.StatusOK},
		{"lan-chat.home:" + port, http.StatusMisdirectedRequest},
		{"rebind.attacker.example:" + port, http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
	} {
		t.Run(tt.host, func(t *testing.T) {
			if got := get(tt.host, "/chats/"); got != tt.want {
				t.Fatalf("GET /chats/ for Host %s: %d, want %d", tt.host, got, tt.want)
			}
		})
	}
	if got := get("evil.example", "/healthz"); got != http.StatusOK {
		t.Fatalf("health check for another name: %d", got)
	}
	// The rebinding page's WebSocket: its own name as Host and Origin.
	h := http.Header{"Origin": {"http://rebind.attacker.example:" + port}}
	r := srv.call(t, "POST", "/ws-ticket/", tok, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, srv.wsURL("ticket="+url.QueryEscape(r.str("ticket"))), &websocket.DialOptions{HTTPHeader: h, Host: "rebind.attacker.example:" + port})
	if err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("a rebound page opened a WebSocket: %v %v", err, resp)
	}
	// A page at PUBLIC_URL may.
	h = http.Header{"Origin": {"https://chat.example.com"}}
	if _, err := srv.dial(t, "token="+url.QueryEscape(tok), h); err != nil {
		t.Fatalf("PUBLIC_URL's page: %v", err)
	}
}

// TestMalformedFramesCountAgainstTheRate: frames that do not decode, and
// binary ones, take a token of the connection's frame rate like any other,
// so a flood of them is answered "too_many" and cannot cost the server
// more than the rate allows.
func TestMalformedFramesCountAgainstTheRate(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"RATE_LIMIT_FRAMES_PER_SECOND": "1", "RATE_LIMIT_FRAMES_BURST": "5"}))
	c := srv.MustDial(t, srv.MustUser(t, "flo"), "global")
	c.nextType("hello")
	for range 10 {
		c.sendRaw(websocket.MessageText, []byte("not json"))
		c.sendRaw(websocket.MessageBinary, []byte{1, 2, 3})
	}
	codes := map[string]int{}
	for range 20 {
		f := c.nextType("error")
		codes[f["code"].(string)]++
	}
	if codes["too_many"] < 10 || codes["invalid"] > 6 {
		t.Fatalf("error codes for 20 bad frames at 1/s (bursts of 5): %v", codes)
	}
}
