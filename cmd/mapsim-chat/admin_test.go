package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// adminIn runs `mapsim-chat admin args…` in-process, as another process
// beside the server would (its own store connection), and returns its
// standard output.
func adminIn(t testing.TB, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return env[k] },
		strings.NewReader(stdin), &out, &errOut, nil)
	return out.String(), err
}

// MustAdmin runs `mapsim-chat admin args…` as its own process (the test
// binary acting as main), beside the test's server, and returns its
// standard output; it fails the test unless the command exits 0.
func MustAdmin(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runMain(t, envList(env), append([]string{"admin"}, args...)...)
	if code != 0 {
		t.Fatalf("admin %v: exit %d\n%s%s", args, code, stdout, stderr)
	}
	return stdout
}

// envList turns an environment map into KEY=VALUE lines for runMain.
func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// TestAdminCommandsBadInput: each new admin command answers -h with its
// usage and exit 0, and a mistake with exit 1 and a sentence that says what
// to do, before it touches the data folder.
func TestAdminCommandsBadInput(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"delete-user", "unlock", "list-users", "sessions", "audit", "backup", "restore", "export"} {
		t.Run(cmd+" -h", func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, []string{"DATA_DIR=" + filepath.Join(t.TempDir(), "d")}, "admin", cmd, "-h")
			if code != 0 || !strings.Contains(stdout, "  "+cmd) {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"delete-user"}, "-username is required"},
		{[]string{"sessions"}, "-username is required"},
		{[]string{"delete-user", "-username", "a", "extra"}, `unexpected argument "extra"`},
		{[]string{"delete-user", "-username", "a", "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"unlock"}, "name -username, -address or both"},
		{[]string{"unlock", "-address", "not-an-ip"}, `-address "not-an-ip" is not an IP address`},
		{[]string{"unlock", "-address", "fe80::1%eth0"}, "is not an IP address"},
		{[]string{"audit", "-limit", "0"}, "-limit 0: give a number from 1 to 100000"},
		{[]string{"audit", "-limit", "many"}, "invalid value"},
		{[]string{"backup"}, "-out FILE is required"},
		{[]string{"restore"}, "-in FILE is required"},
		{[]string{"export", "-format", "json"}, "-chat NAME is required"},
		{[]string{"export", "-chat", "global"}, "-format is required: json, txt or html"},
		{[]string{"export", "-chat", "global", "-format", "pdf"}, `-format "pdf": give json, txt or html`},
		{[]string{"frobnicate"}, `unknown admin command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			data := filepath.Join(t.TempDir(), "data")
			code, stdout, stderr := runMain(t, []string{"DATA_DIR=" + data}, append([]string{"admin"}, tt.args...)...)
			if code != 1 || !strings.Contains(stderr+stdout, tt.want) {
				t.Fatalf("exit %d, want 1 and %q\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatalf("a refused command created %s", data)
			}
		})
	}
	// Against a database: names that are not there.
	env := baseEnv(t, nil)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"delete-user", "-username", "nobody"}, "No such user"},
		{[]string{"sessions", "-username", "nobody"}, "No such user"},
		{[]string{"unlock", "-username", "nobody"}, "No such user"},
		{[]string{"export", "-chat", "nowhere", "-format", "txt"}, `no chat is named "nowhere"`},
	} {
		if code, stdout, stderr := runMain(t, envList(env), append([]string{"admin"}, tt.args...)...); code != 1 || !strings.Contains(stderr, tt.want) {
			t.Fatalf("admin %v: exit %d, want 1 and %q\n%s%s", tt.args, code, tt.want, stdout, stderr)
		}
	}
}

// TestDeleteUser: deleting an account on a running server closes its live
// socket at once and refuses its logins; its messages stay and show as
// "deleted user" in the API; its username cannot be registered again; its
// files stay, or go with -remove-files; the action is in the audit trail
// under the operating-system user (and the sudo caller). disable-user's
// socket closing is TestRevocationClosesLiveSockets.
func TestDeleteUser(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
			env["SUDO_USER"] = "ana"
			env["PRESENCE_GRACE"] = "60s" // a closed tab may come back; a deleted account does not
			srv := MustStart(t, env)
			alice, bob, carol := srv.MustUser(t, "alice"), srv.MustUser(t, "bob"), srv.MustUser(t, "carol")

			aliceWS := srv.MustDial(t, alice, "global")
			aliceWS.nextType("hello")
			aliceWS.send(map[string]any{"type": "text", "text": "alice was here", "client_id": "a1"})
			aliceWS.nextType("ack")
			up := srv.upload(t, alice, "", "notes.txt", "text/plain", strings.NewReader("alice's notes"))
			if up.Status != http.StatusCreated && up.Status != http.StatusOK {
				t.Fatalf("upload: %d %s", up.Status, up.Raw)
			}
			aliceWS.send(map[string]any{"type": "file", "text": up.str("file_url"), "client_id": "a2"})
			aliceWS.nextType("ack")
			carolUp := srv.upload(t, carol, "", "carol.txt", "text/plain", strings.NewReader("carol's file"))
			bobWS := srv.MustDial(t, bob, "global")
			bobWS.nextType("hello")

			out := MustAdmin(t, env, "delete-user", "-username", "alice")
			if !strings.Contains(out, "alice is deleted") || !strings.Contains(out, "1 files kept") || !strings.Contains(out, "stays reserved") {
				t.Fatalf("delete-user said: %s", out)
			}
			if code := aliceWS.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the deleted user's socket closed with %v", code)
			}
			// Offline to the others at once, without the presence grace.
			bobWS.next(func(f map[string]any) bool {
				return f["type"] == "presence" && f["username"] == "alice" && f["online"] == false
			})
			if r := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": testPassword}); r.Status != http.StatusUnauthorized {
				t.Fatalf("a deleted user logged in: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "GET", "/chats/", alice, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("a deleted user's token still works: %d", r.Status)
			}
			h := srv.call(t, "GET", "/messages/?chat_id=global", bob, nil)
			msgs, _ := h.Body["messages"].([]any)
			if len(msgs) != 2 {
				t.Fatalf("history after delete: %s", h.Raw)
			}
			for _, m := range msgs {
				if m.(map[string]any)["username"] != "deleted user" {
					t.Fatalf("a deleted user's message shows %v", m)
				}
			}
			if strings.Contains(string(h.Raw), `"alice"`) {
				t.Fatalf("the history still names alice: %s", h.Raw)
			}
			if r := srv.call(t, "GET", up.str("file_url"), bob, nil); r.Status != http.StatusOK {
				t.Fatalf("the kept file: %d", r.Status)
			}
			if r := srv.call(t, "POST", "/register/", "", url.Values{"username": {"Alice"}, "password": {testPassword}}); r.Status != http.StatusConflict {
				t.Fatalf("registering the deleted name: %d %s", r.Status, r.Raw)
			}
			// Bob's socket never noticed.
			bobWS.send(map[string]any{"type": "text", "text": "still here", "client_id": "b1"})
			bobWS.nextType("ack")

			// Deleting again is refused, and enabling, resetting and
			// promoting a deleted account are too; -remove-files removes
			// the files it kept, and only its own.
			for _, args := range [][]string{{"delete-user", "-username", "alice"}, {"enable-user", "-username", "alice"}, {"set-role", "-username", "alice", "-role", "admin"}} {
				if _, err := adminIn(t, env, "", args...); err == nil || !strings.Contains(err.Error(), "deleted") {
					t.Fatalf("admin %v on a deleted account: %v", args, err)
				}
			}
			if _, err := adminIn(t, env, "a-New-long-passphrase-7\n", "reset-password", "-username", "alice"); err == nil {
				t.Fatal("reset-password on a deleted account")
			}
			out = MustAdmin(t, env, "delete-user", "-username", "alice", "-remove-files")
			if !strings.Contains(out, "1 files removed") {
				t.Fatalf("delete-user -remove-files said: %s", out)
			}
			if r := srv.call(t, "GET", up.str("file_url"), bob, nil); r.Status != http.StatusGone || !strings.Contains(r.str("detail"), "administrator removed it") {
				t.Fatalf("a removed file: %d", r.Status)
			}
			if r := srv.call(t, "GET", carolUp.str("file_url"), bob, nil); r.Status != http.StatusOK {
				t.Fatalf("another user's file: %d", r.Status)
			}

			// A user deleted with -remove-files at once.
			carolWS := srv.MustDial(t, carol, "global")
			carolWS.nextType("hello")
			if out := MustAdmin(t, env, "delete-user", "-username", "carol", "-remove-files"); !strings.Contains(out, "1 files removed") {
				t.Fatalf("delete-user carol: %s", out)
			}
			if code := carolWS.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("carol's socket closed with %v", code)
			}

			list := MustAdmin(t, env, "list-users")
			for _, re := range []string{`(?m)^\d+\s+alice\s+member\s+deleted \d{4}-\d\d-\d\d\s`, `(?m)^\d+\s+bob\s+member\s+active\s+\S+ \S+\s+\S+ \S+\s+1$`, `3 accounts`} {
				if !regexp.MustCompile(re).MatchString(list) {
					t.Fatalf("list-users does not match %s:\n%s", re, list)
				}
			}
			audit := MustAdmin(t, env, "audit")
			if !regexp.MustCompile(`delete-user\s+alice\s+1 files kept`).MatchString(audit) || !regexp.MustCompile(`delete-user\s+carol\s+1 files removed`).MatchString(audit) ||
				!strings.Contains(audit, "(sudo by ana)") {
				t.Fatalf("audit:\n%s", audit)
			}
			if strings.Contains(srv.logs.String(), testPassword) {
				t.Fatal("a password reached the log")
			}
		})
	}
}

// TestUnlockRunningServer: a login throttle lives in the running server's
// memory; admin unlock, another process, clears it there within seconds —
// for a username at every address, and for an address whatever the
// username — and the action is audited.
func TestUnlockRunningServer(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
			env["TRUSTED_PROXIES"] = "127.0.0.1"
			srv := MustStart(t, env)
			srv.MustUser(t, "dora")
			const guesser = "203.0.113.9"
			login := func(addr, user, password string) apiResponse {
				return srv.callWith(t, "POST", "/login/", "", from(addr), url.Values{"username": {user}, "password": {password}})
			}
			// waitLogin waits until the right password gets in from addr.
			waitLogin := func(addr, user string) {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				for {
					r := login(addr, user, testPassword)
					if r.Status == http.StatusOK {
						return
					}
					if r.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
						t.Fatalf("login of %s from %s: %d %s", user, addr, r.Status, r.Raw)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			for i := range 6 {
				login(guesser, "dora", fmt.Sprint("guess-", i))
			}
			if r := login(guesser, "dora", testPassword); r.Status != http.StatusTooManyRequests {
				t.Fatalf("dora is not locked out: %d", r.Status)
			}
			if out := MustAdmin(t, env, "unlock", "-username", "DORA"); !strings.Contains(out, "dora at every address") {
				t.Fatalf("unlock said: %s", out)
			}
			waitLogin(guesser, "dora")

			// The address: 21 failures lock it for every username.
			for i := range 21 {
				login(guesser, fmt.Sprint("nobody", i), "wrong-password-1")
			}
			if r := login(guesser, "dora", testPassword); r.Status != http.StatusTooManyRequests {
				t.Fatalf("the address is not locked out: %d", r.Status)
			}
			MustAdmin(t, env, "unlock", "-address", "::ffff:"+guesser) // written as the server writes it
			waitLogin(guesser, "dora")
			if !regexp.MustCompile(`unlock\s+-\s+every username at 203\.0\.113\.9`).MatchString(MustAdmin(t, env, "audit")) {
				t.Fatalf("audit:\n%s", MustAdmin(t, env, "audit"))
			}
			srv.waitLog(t, "login throttle cleared by an admin", 2)
		})
	}
}

// TestSessionsCommand: sessions lists a user's live sessions with when they
// started and from where; a logged-out one is gone from the list.
func TestSessionsCommand(t *testing.T) {
	env := baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"})
	srv := MustStart(t, env)
	srv.MustUser(t, "erin")
	tokens := []string{}
	for _, addr := range []string{"198.51.100.1", "198.51.100.2"} {
		r := srv.callWith(t, "POST", "/login/", "", http.Header{"X-Forwarded-For": {addr}, "User-Agent": {"TestBrowser/1"}},
			url.Values{"username": {"erin"}, "password": {testPassword}})
		tokens = append(tokens, r.str("access_token"))
	}
	srv.call(t, "POST", "/logout/", tokens[0], nil)
	out := MustAdmin(t, env, "sessions", "-username", "erin")
	if !regexp.MustCompile(`(?m)^\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\S+ \S+\s+198\.51\.100\.2\s+TestBrowser/1$`).MatchString(out) ||
		strings.Contains(out, "198.51.100.1") || !strings.Contains(out, "2 live sessions of erin") {
		t.Fatalf("sessions:\n%s", out)
	}
}

// TestAdminActionsKeepNoSecrets: the log line and the audit row of each
// admin action name the command, its target and the operating-system
// user, and never a password or a key, even of commands that read one.
func TestAdminActionsKeepNoSecrets(t *testing.T) {
	env := baseEnv(t, map[string]string{"LOG_FORMAT": "json"})
	runLogged := func(stdin string, args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return env[k] },
			strings.NewReader(stdin), &out, &errOut, nil)
		if err != nil {
			t.Fatalf("admin %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}
	const password = "Correct-horse-staple-99"
	_, log1 := runLogged(password+"\n", "create-user", "-username", "hal", "-admin")
	out, log2 := runLogged("", "rotate-secret", "-generate")
	newKey := regexp.MustCompile(`SECRET_KEY=(\S+)`).FindStringSubmatch(out)
	if newKey == nil {
		t.Fatalf("rotate-secret printed no key: %s", out)
	}
	env["SECRET_KEY"] = newKey[1]
	audit, _ := runLogged("", "audit")
	for _, text := range []string{log1, log2, audit} {
		if strings.Contains(text, password) || strings.Contains(text, newKey[1]) || strings.Contains(text, "TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5") {
			t.Fatalf("a secret was recorded:\n%s", text)
		}
	}
	for _, want := range []string{`"msg":"admin action","command":"create-user","target":"hal","detail":"role admin","actor":"`} {
		if !strings.Contains(log1, want) {
			t.Fatalf("no admin action line %s in:\n%s", want, log1)
		}
	}
	if !strings.Contains(log2, `"command":"rotate-secret"`) || !regexp.MustCompile(`create-user\s+hal\s+role admin`).MatchString(audit) ||
		!regexp.MustCompile(`rotate-secret\s+-\s+every key version rewrapped`).MatchString(audit) {
		t.Fatalf("logs:\n%s\naudit:\n%s", log2, audit)
	}
}

// openRawDB opens a test server's database with plain database/sql.
func openRawDB(t testing.TB, env map[string]string) *sql.DB {
	t.Helper()
	var (
		db  *sql.DB
		err error
	)
	if env["DB_HOST"] != "" {
		db, err = sql.Open("mysql", fmt.Sprintf("%s@tcp(%s:%s)/%s", env["DB_USER"], env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]))
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(env["DATA_DIR"], "chat.db")+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
