package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// chromeUA is the User-Agent the tests' "browser" sends.
const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// browser is a test's stand-in for a browser of one user: its refresh
// cookie (as the browser would keep it) and the access token in its page.
type browser struct {
	srv    *testServer
	cookie string
	token  string
}

// browserHeader is what a page of the server sends: its Origin and the
// refresh cookie when there is one.
func (b *browser) header(cookie string) http.Header {
	h := http.Header{"Origin": {b.srv.URL}, "User-Agent": {chromeUA}}
	if cookie != "" {
		h.Set("Cookie", "mapsim_refresh="+cookie)
	}
	return h
}

// refreshCookieOf returns the refresh cookie an answer sets, if any.
func refreshCookieOf(r apiResponse) (*http.Cookie, bool) {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "mapsim_refresh" {
			return c, true
		}
	}
	return nil, false
}

// MustBrowserLogin logs in as the web client does.
func (s *testServer) MustBrowserLogin(t testing.TB, name, pw string) *browser {
	t.Helper()
	b := &browser{srv: s}
	r := s.callWith(t, "POST", "/login/", "", b.header(""), map[string]any{"username": name, "password": pw, "cookie": true})
	c, ok := refreshCookieOf(r)
	if r.Status != http.StatusOK || r.str("access_token") == "" || !ok || c.Value == "" {
		t.Fatalf("browser login %s: %d %s %v", name, r.Status, r.Raw, r.Header.Values("Set-Cookie"))
	}
	b.cookie, b.token = c.Value, r.str("access_token")
	return b
}

// refresh trades the cookie, keeping a new one the answer sets.
func (b *browser) refresh(t testing.TB) apiResponse {
	t.Helper()
	r := b.srv.callWith(t, "POST", "/session/refresh", "", b.header(b.cookie), nil)
	if c, ok := refreshCookieOf(r); ok {
		b.cookie = c.Value
	}
	if r.Status == http.StatusOK {
		b.token = r.str("access_token")
	}
	return r
}

func TestBrowserSignIn(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, be.env(t)))
			srv.MustUser(t, "alice")
			creds := map[string]any{"username": "alice", "password": testPassword, "cookie": true}

			// Only the server's own pages get a cookie: no Origin (a
			// script asks without "cookie") or another site's is refused.
			for _, origin := range []string{"", "https://evil.example", "null"} {
				h := http.Header{}
				if origin != "" {
					h.Set("Origin", origin)
				}
				if r := srv.callWith(t, "POST", "/login/", "", h, creds); r.Status != http.StatusForbidden || len(r.Header.Values("Set-Cookie")) != 0 {
					t.Errorf("browser login from origin %q: %d %s", origin, r.Status, r.Raw)
				}
			}

			b := srv.MustBrowserLogin(t, "alice", testPassword)
			login := srv.callWith(t, "POST", "/login/", "", b.header(""), creds)
			c, _ := refreshCookieOf(login)
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/session/refresh" || c.MaxAge != 30*24*3600 {
				t.Fatalf("refresh cookie %q", login.Header.Get("Set-Cookie"))
			}
			if n := num(login.Body, "expires_in"); n <= 0 || n > 600 {
				t.Fatalf("a browser's access token lives %d s; at most 600", n)
			}
			if r := srv.call(t, "GET", "/chats/", b.token, nil); r.Status != http.StatusOK {
				t.Fatalf("browser token: %d %s", r.Status, r.Raw)
			}

			// Refresh: a new token and a new cookie, the session the same.
			first, firstToken := b.cookie, b.token
			if r := b.refresh(t); r.Status != http.StatusOK || b.cookie == first || b.token == firstToken {
				t.Fatalf("refresh: %d %s", r.Status, r.Raw)
			}
			for _, tok := range []string{firstToken, b.token} {
				if r := srv.call(t, "GET", "/chats/", tok, nil); r.Status != http.StatusOK {
					t.Fatalf("an access token of the session after a refresh: %d %s", r.Status, r.Raw)
				}
			}

			// CSRF: the cookie from another origin, or with no Origin, is
			// refused and not spent.
			for _, origin := range []string{"", "https://evil.example", "http://localhost.evil.example"} {
				h := b.header(b.cookie)
				h.Del("Origin")
				if origin != "" {
					h.Set("Origin", origin)
				}
				if r := srv.callWith(t, "POST", "/session/refresh", "", h, nil); r.Status != http.StatusForbidden || r.str("code") != "forbidden" {
					t.Errorf("refresh from origin %q: %d %s", origin, r.Status, r.Raw)
				}
			}
			// No cookie: nobody is signed in here, which is no error.
			if r := srv.callWith(t, "POST", "/session/refresh", "", b.header(""), nil); r.Status != http.StatusNoContent {
				t.Errorf("refresh without a cookie: %d %s", r.Status, r.Raw)
			}
			// A forged cookie: unauthorized, and the cookie is cleared.
			for _, forged := range []string{"forged", strings.Repeat("A", 43), strings.Repeat("x", 5000)} {
				r := srv.callWith(t, "POST", "/session/refresh", "", b.header(forged), nil)
				if r.Status != http.StatusUnauthorized {
					t.Errorf("refresh with cookie %.10q: %d %s", forged, r.Status, r.Raw)
				}
				if c, ok := refreshCookieOf(r); !ok || c.MaxAge >= 0 {
					t.Errorf("refresh with cookie %.10q does not clear it: %v", forged, r.Header.Values("Set-Cookie"))
				}
			}
			// Two tabs with the same cookie at once: both succeed, the
			// second without a new cookie.
			same := b.cookie
			if r := b.refresh(t); r.Status != http.StatusOK {
				t.Fatalf("refresh after the refusals: %d %s", r.Status, r.Raw)
			}
			tab := srv.callWith(t, "POST", "/session/refresh", "", b.header(same), nil)
			if _, set := refreshCookieOf(tab); tab.Status != http.StatusOK || set {
				t.Fatalf("the second tab's refresh within the grace: %d %s %v", tab.Status, tab.Raw, tab.Header.Values("Set-Cookie"))
			}

			// A replay (the first cookie, long spent) ends the family: its
			// socket closes, its tokens and its newest cookie are refused.
			ws := srv.MustDial(t, b.token, "global")
			ws.nextType("hello")
			r := srv.callWith(t, "POST", "/session/refresh", "", b.header(first), nil)
			if r.Status != http.StatusUnauthorized || !strings.Contains(r.str("detail"), "somewhere else") {
				t.Fatalf("replayed refresh: %d %s", r.Status, r.Raw)
			}
			if code := ws.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the replayed family's socket closed with %v", code)
			}
			if r := srv.call(t, "GET", "/chats/", b.token, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("an access token of a replayed family: %d", r.Status)
			}
			newest := b.cookie
			if r := b.refresh(t); r.Status != http.StatusUnauthorized {
				t.Fatalf("the newest cookie of a replayed family: %d %s", r.Status, r.Raw)
			}
			srv.waitLog(t, "refresh token replayed", 1)
			if logs := srv.logs.String(); strings.Contains(logs, first) || strings.Contains(logs, newest) {
				t.Fatal("a refresh token reached the log")
			}

			// Logout ends the family and clears the cookie.
			b = srv.MustBrowserLogin(t, "alice", testPassword)
			out := srv.call(t, "POST", "/logout/", b.token, nil)
			if c, ok := refreshCookieOf(out); out.Status != http.StatusOK || !ok || c.MaxAge >= 0 {
				t.Fatalf("logout: %d %v", out.Status, out.Header.Values("Set-Cookie"))
			}
			if r := b.refresh(t); r.Status != http.StatusUnauthorized {
				t.Fatalf("refresh after logout: %d %s", r.Status, r.Raw)
			}

			// Scripts keep their long-lived bearer token and get no cookie.
			plain := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": testPassword})
			if _, set := refreshCookieOf(plain); plain.Status != http.StatusOK || set || num(plain.Body, "expires_in") != 24*3600 {
				t.Fatalf("a script's login: %d %s %v", plain.Status, plain.Raw, plain.Header.Values("Set-Cookie"))
			}
		})
	}
}

// TestAdminEndsBrowserSessions: disable-user, reset-password and
// delete-user end a browser's refresh family too, as they end tokens.
func TestAdminEndsBrowserSessions(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	admin := func(stdin string, args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return env[k] },
			strings.NewReader(stdin), &out, &errOut, nil)
		if err != nil {
			t.Fatalf("admin %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
	}
	for i, step := range [][]string{
		{"", "disable-user", "-username", "user0"},
		{"a-New-long-passphrase-7\n", "reset-password", "-username", "user1"},
		{"", "delete-user", "-username", "user2"},
	} {
		name := fmt.Sprintf("user%d", i)
		srv.MustUser(t, name)
		b := srv.MustBrowserLogin(t, name, testPassword)
		ws := srv.MustDial(t, b.token, "global")
		ws.nextType("hello")
		admin(step[0], step[1:]...)
		if code := ws.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Errorf("%s: the socket closed with %v", step[1], code)
		}
		if r := b.refresh(t); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: refresh afterwards: %d %s", step[1], r.Status, r.Raw)
		}
	}
}

func TestMySessions(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, be.env(t)))
			srv.MustUser(t, "alice")
			bob := srv.MustUser(t, "bob")
			here := srv.MustBrowserLogin(t, "alice", testPassword)
			there := srv.MustBrowserLogin(t, "alice", testPassword)
			script := srv.MustLogin(t, "alice", testPassword)

			list := srv.call(t, "GET", "/sessions/", here.token, nil)
			sessions, _ := list.Body["sessions"].([]any)
			// Three, and the one MustUser logged in.
			if list.Status != http.StatusOK || len(sessions) != 4 {
				t.Fatalf("sessions: %d %s", list.Status, list.Raw)
			}
			var current, other int64
			for _, s := range sessions {
				s := s.(map[string]any)
				if s["current"] == true {
					current = num(s, "id")
					if s["browser"] != "Chrome" || s["os"] != "Linux" || s["ip"] != "127.0.0.1" || s["created_at"] == "" || s["last_used_at"] == "" {
						t.Errorf("this session: %v", s)
					}
				} else if s["browser"] == "Chrome" {
					other = num(s, "id")
				}
			}
			if current == 0 || other == 0 || current == other {
				t.Fatalf("sessions: %s", list.Raw)
			}

			// Another user's session, or no session, is not found.
			for _, path := range []string{fmt.Sprint("/sessions/", current), "/sessions/999999", "/sessions/x", "/sessions/-1"} {
				if r := srv.call(t, "DELETE", path, bob, nil); r.Status != http.StatusNotFound {
					t.Errorf("bob DELETE %s: %d %s", path, r.Status, r.Raw)
				}
			}

			// Ending one session closes its socket at once and ends its
			// family; the others stay.
			ws := srv.MustDial(t, there.token, "global")
			ws.nextType("hello")
			if r := srv.call(t, "DELETE", fmt.Sprint("/sessions/", other), here.token, nil); r.Status != http.StatusOK {
				t.Fatalf("end a session: %d %s", r.Status, r.Raw)
			}
			if code := ws.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the ended session's socket closed with %v", code)
			}
			if r := there.refresh(t); r.Status != http.StatusUnauthorized {
				t.Fatalf("refresh of an ended session: %d", r.Status)
			}
			if r := srv.call(t, "DELETE", fmt.Sprint("/sessions/", other), here.token, nil); r.Status != http.StatusNotFound {
				t.Fatalf("ending it again: %d %s", r.Status, r.Raw)
			}

			// End all others: the script's token goes, this one stays.
			ws = srv.MustDial(t, script, "global")
			ws.nextType("hello")
			r := srv.call(t, "POST", "/sessions/end-others", here.token, nil)
			if r.Status != http.StatusOK || num(r.Body, "ended") != 2 {
				t.Fatalf("end others: %d %s", r.Status, r.Raw)
			}
			if code := ws.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the other session's socket closed with %v", code)
			}
			if r := srv.call(t, "GET", "/chats/", script, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("an ended session's token: %d", r.Status)
			}
			if r := here.refresh(t); r.Status != http.StatusOK {
				t.Fatalf("this session after ending the others: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "GET", "/sessions/", here.token, nil); len(r.Body["sessions"].([]any)) != 1 {
				t.Fatalf("sessions left: %s", r.Raw)
			}

			// Ending my own session is a logout: the cookie is cleared.
			r = srv.call(t, "DELETE", fmt.Sprint("/sessions/", current), here.token, nil)
			if c, ok := refreshCookieOf(r); r.Status != http.StatusOK || !ok || c.MaxAge >= 0 {
				t.Fatalf("end my own session: %d %v", r.Status, r.Header.Values("Set-Cookie"))
			}
			if r := srv.call(t, "GET", "/sessions/", here.token, nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("after ending my own session: %d", r.Status)
			}
		})
	}
}

func TestChangePasswordAPI(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, be.env(t)))
			srv.MustUser(t, "alice")
			here := srv.MustBrowserLogin(t, "alice", testPassword)
			there := srv.MustBrowserLogin(t, "alice", testPassword)
			ws := srv.MustDial(t, there.token, "global")
			ws.nextType("hello")
			const next = "quiet-Lantern-river-58"

			for _, tt := range []struct {
				current, next string
				status        int
			}{
				{"wrong-Password-1", next, http.StatusForbidden},
				{testPassword, "short", http.StatusBadRequest},
				{testPassword, "password123", http.StatusBadRequest},
				{testPassword, "alice-alice-alice", http.StatusBadRequest},
			} {
				r := srv.call(t, "POST", "/password/", here.token, map[string]string{"current_password": tt.current, "new_password": tt.next})
				if r.Status != tt.status {
					t.Errorf("change from %q to %q: %d %s", tt.current, tt.next, r.Status, r.Raw)
				}
			}
			if r := srv.call(t, "POST", "/password/", "", map[string]string{"current_password": testPassword, "new_password": next}); r.Status != http.StatusUnauthorized {
				t.Fatalf("change without a token: %d", r.Status)
			}

			r := srv.call(t, "POST", "/password/", here.token, url.Values{"current_password": {testPassword}, "new_password": {next}})
			// The other browser, and the session MustUser logged in.
			if r.Status != http.StatusOK || num(r.Body, "ended") != 2 {
				t.Fatalf("change password: %d %s", r.Status, r.Raw)
			}
			if code := ws.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the other session's socket closed with %v", code)
			}
			if r := there.refresh(t); r.Status != http.StatusUnauthorized {
				t.Fatalf("the other browser's refresh: %d", r.Status)
			}
			if r := here.refresh(t); r.Status != http.StatusOK {
				t.Fatalf("this browser's refresh: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": testPassword}); r.Status != http.StatusUnauthorized {
				t.Fatalf("the old password: %d", r.Status)
			}
			srv.MustLogin(t, "alice", next)
			if logs := srv.logs.String(); strings.Contains(logs, next) || strings.Contains(logs, testPassword) {
				t.Fatal("a password reached the log")
			}
		})
	}
}
