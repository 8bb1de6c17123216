package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// TestRevocationClosesLiveSockets: a live WebSocket does not outlive its
// session. A logout closes its session's sockets; a password reset or a
// disabled account — made by the admin command, another process with its
// own connection to the database — closes every socket of the user within
// seconds, on every backend, and other users are untouched.
func TestRevocationClosesLiveSockets(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
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
			alice := srv.MustUser(t, "alice")
			bob := srv.MustUser(t, "bob")
			bobWS := srv.MustDial(t, bob, "global")
			bobWS.nextType("hello")

			// Logout: the session's socket closes; alice's other session stays.
			aliceTab := srv.MustLogin(t, "alice", testPassword)
			gone := srv.MustDial(t, alice, "global")
			kept := srv.MustDial(t, aliceTab, "global")
			kept.nextType("hello")
			if r := srv.call(t, "POST", "/logout/", alice, nil); r.Status != http.StatusOK {
				t.Fatalf("logout: %d %s", r.Status, r.Raw)
			}
			if code := gone.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("the logged-out socket closed with %v", code)
			}
			kept.send(map[string]any{"type": "text", "text": "still here", "client_id": "k1"})
			kept.nextType("ack")

			// A password reset from another process closes the rest.
			admin("a-New-long-passphrase-7\n", "reset-password", "-username", "alice")
			if code := kept.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("after the reset the socket closed with %v", code)
			}

			// Disabling a user closes their sockets, and they cannot log in.
			fresh := srv.MustLogin(t, "alice", "a-New-long-passphrase-7")
			again := srv.MustDial(t, fresh, "global")
			again.nextType("hello")
			admin("", "disable-user", "-username", "alice")
			if code := again.closeStatus(); code != websocket.StatusPolicyViolation {
				t.Fatalf("after disabling the socket closed with %v", code)
			}
			if r := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": "a-New-long-passphrase-7"}); r.Status != http.StatusUnauthorized {
				t.Fatalf("a disabled user logged in: %d %s", r.Status, r.Raw)
			}
			admin("", "enable-user", "-username", "alice")
			srv.MustLogin(t, "alice", "a-New-long-passphrase-7")

			// Bob never noticed.
			bobWS.send(map[string]any{"type": "text", "text": "all good", "client_id": "b1"})
			bobWS.nextType("ack")
		})
	}
}
