package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/testutil/mariadbtest"
)

// TestPresenceTwoTabs: a user with two tabs stays online until both close.
func TestPresenceTwoTabs(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	watcher := srv.MustDial(t, srv.MustUser(t, "watcher"), "global")
	watcher.nextType("hello")
	tok := srv.MustUser(t, "twotabs")
	isPresence := func(online bool) func(map[string]any) bool {
		return func(f map[string]any) bool {
			return f["type"] == "presence" && f["username"] == "twotabs" && f["online"] == online
		}
	}
	tab1 := srv.MustDial(t, tok, "global")
	watcher.next(isPresence(true))
	tab2 := srv.MustDial(t, tok, "global")
	if f := tab2.nextType("online_users"); fmt.Sprint(f["users"]) != "[twotabs watcher]" {
		t.Fatalf("online_users = %v", f)
	}
	tab1.conn.Close(websocket.StatusNormalClosure, "")
	tab1.closeStatus()
	// Still online: the REST view says so and no offline frame arrived
	// before the probe below.
	if r := srv.call(t, "GET", "/users/online", tok, nil); fmt.Sprint(r.Body["users"]) != "[twotabs watcher]" {
		t.Fatalf("online after one tab closed: %s", r.Raw)
	}
	tab2.send(map[string]any{"type": "text", "text": "probe", "client_id": "p1"})
	f := watcher.next(func(f map[string]any) bool { return f["type"] == "text" || isPresence(false)(f) })
	if f["type"] != "text" {
		t.Fatalf("watcher saw %v before the probe: offline while a tab is open", f)
	}
	tab2.conn.Close(websocket.StatusNormalClosure, "")
	watcher.next(isPresence(false))
	if r := srv.call(t, "GET", "/users/online", tok, nil); fmt.Sprint(r.Body["users"]) != "[watcher]" {
		t.Fatalf("online after both closed: %s", r.Raw)
	}
}

// TestPresenceGrace: a user who comes back within PRESENCE_GRACE was never
// announced offline, nor online again; someone connecting meanwhile sees
// them online; and once they stay away past the grace, offline comes.
func TestPresenceGrace(t *testing.T) {
	t.Parallel()
	// Long enough for the steps between a close and the reconnect below
	// (no password hashing among them) on a slow, loaded machine.
	const grace = 3 * time.Second
	srv := MustStart(t, baseEnv(t, map[string]string{"PRESENCE_GRACE": grace.String()}))
	watcher := srv.MustDial(t, srv.MustUser(t, "watcher"), "global")
	watcher.nextType("hello")
	tok, lateTok := srv.MustUser(t, "blinker"), srv.MustUser(t, "late")
	about := func(f map[string]any) bool { return f["type"] == "presence" && f["username"] == "blinker" }
	first := srv.MustDial(t, tok, "global")
	if f := watcher.next(about); f["online"] != true {
		t.Fatalf("watcher saw %v, want blinker online", f)
	}

	// A blip: closed and back at once. Nothing is announced: the next
	// frame about blinker the watcher sees is the probe, not presence.
	first.conn.Close(websocket.StatusNormalClosure, "")
	first.closeStatus()
	if r := srv.call(t, "GET", "/users/online", tok, nil); fmt.Sprint(r.Body["users"]) != "[blinker watcher]" {
		t.Fatalf("online during the grace: %s", r.Raw)
	}
	late := srv.MustDial(t, lateTok, "global") // connects while blinker is away
	if f := late.nextType("online_users"); fmt.Sprint(f["users"]) != "[blinker late watcher]" {
		t.Fatalf("online_users during the grace = %v", f)
	}
	second := srv.MustDial(t, tok, "global")
	second.nextType("hello")
	second.send(map[string]any{"type": "text", "text": "probe", "client_id": "p1"})
	if f := watcher.next(func(f map[string]any) bool { return f["type"] == "text" || about(f) }); f["type"] != "text" {
		t.Fatalf("watcher saw %v before the probe: a blip was announced", f)
	}

	// Gone for good: offline comes, and not before the grace is over.
	second.conn.Close(websocket.StatusNormalClosure, "")
	second.closeStatus()
	left := time.Now()
	if f := watcher.next(about); f["online"] != false {
		t.Fatalf("watcher saw %v, want blinker offline", f)
	}
	if waited := time.Since(left); waited < grace-100*time.Millisecond {
		t.Fatalf("offline announced %s after leaving, before the %s grace", waited, grace)
	}
	if f := late.next(about); f["online"] != false {
		t.Fatalf("late saw %v, want blinker offline", f)
	}
	if r := srv.call(t, "GET", "/users/online", tok, nil); fmt.Sprint(r.Body["users"]) != "[late watcher]" {
		t.Fatalf("online after the grace: %s", r.Raw)
	}
}

// TestPresenceLimit: a chat with more connections than PRESENCE_LIMIT
// carries no presence, while a direct chat still does.
func TestPresenceLimit(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, map[string]string{"PRESENCE_LIMIT": "2"}))
	ann, bea, cid, dot, eve := srv.MustUser(t, "ann"), srv.MustUser(t, "bea"), srv.MustUser(t, "cid"), srv.MustUser(t, "dot"), srv.MustUser(t, "eve")
	if r := srv.call(t, "POST", "/chats/", ann, map[string]any{"e2ee": false, "kind": "direct", "members": []string{"bea"}}); r.str("name") == "" {
		t.Fatalf("direct chat: %s", r.Raw)
	}
	presenceOf := func(name string, online bool) func(map[string]any) bool {
		return func(f map[string]any) bool {
			return f["type"] == "presence" && f["username"] == name && f["online"] == online
		}
	}
	a := srv.MustDial(t, ann, "global")
	a.nextType("hello")
	// Two connections in global: within the limit, so ann hears of bea.
	b := srv.MustDial(t, bea, "global")
	a.next(presenceOf("bea", true))
	// A third: global is over the limit and says nothing of cid, and cid's
	// list holds only cid (cid shares no smaller chat with anyone).
	c := srv.MustDial(t, cid, "global")
	if f := c.nextType("online_users"); fmt.Sprint(f["users"]) != "[cid]" {
		t.Fatalf("cid's online_users = %v, want only cid", f["users"])
	}
	// Only cid's presence is looked for: ann's own "online" may still reach
	// bea, rightly, through their direct chat when ann's announcement ran
	// after bea connected (it follows ann's hello).
	c.send(map[string]any{"type": "text", "text": "marker", "client_id": "m1"})
	for _, w := range []*wsClient{a, b} {
		if f := w.next(func(f map[string]any) bool {
			return f["type"] == "text" || f["type"] == "presence" && f["username"] == "cid"
		}); f["type"] != "text" {
			t.Fatalf("got %v before the marker: presence through a chat over the limit", f)
		}
	}
	// The direct chat still carries presence: ann hears bea leave, though
	// global (ann, cid, dot) stays over the limit.
	d := srv.MustDial(t, dot, "global")
	d.nextType("online_users")
	b.conn.Close(websocket.StatusNormalClosure, "")
	a.next(presenceOf("bea", false))

	// Once big, global stays quiet for a while even when it empties (as in
	// a reconnect storm): eve arrives after cid and dot have gone, and ann
	// hears nothing of her.
	c.conn.Close(websocket.StatusNormalClosure, "")
	d.conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := srv.call(t, "GET", "/users/online", ann, nil)
		if fmt.Sprint(r.Body["users"]) == "[ann]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cid and dot still online: %s", r.Raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e := srv.MustDial(t, eve, "global")
	if f := e.nextType("online_users"); fmt.Sprint(f["users"]) != "[eve]" {
		t.Fatalf("eve's online_users = %v, want only eve", f["users"])
	}
	e.send(map[string]any{"type": "text", "text": "marker 2", "client_id": "m2"})
	if f := a.next(func(f map[string]any) bool {
		return f["type"] == "text" || f["type"] == "presence" && f["username"] == "eve"
	}); f["type"] != "text" {
		t.Fatalf("ann got %v before the marker: presence through a chat that was over the limit", f)
	}
}

// TestSlowClientIsClosed: a client that stops reading is cut off when its
// queue fills, while everyone else keeps receiving every message; the cut
// client catches up with sync.
func TestSlowClientIsClosed(t *testing.T) {
	srv := MustStart(t, withoutRateLimits(baseEnv(t, map[string]string{"MAX_MESSAGE_BYTES": "65536"})))
	sender := srv.MustDial(t, srv.MustUser(t, "sender"), "global")
	fast := srv.MustDial(t, srv.MustUser(t, "fast"), "global")
	slowTok := srv.MustUser(t, "slow")

	// The slow client reads nothing at all, and its socket has a small fixed
	// receive buffer so that the server's queue fills after a few MB.
	ticket := srv.call(t, "POST", "/ws-ticket/", slowTok, nil).str("ticket")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192) })
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	slow, _, err := websocket.Dial(ctx, srv.wsURL("ticket="+url.QueryEscape(ticket)), &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	sender.nextType("hello")
	fast.nextType("hello")
	sender.next(func(f map[string]any) bool {
		return f["type"] == "presence" && f["username"] == "slow" && f["online"] == true
	})

	body := strings.Repeat("slow clients must not stall anyone. ", 1600) // 57.6 KB
	// Bounded in count and time; it takes a few hundred messages and the
	// hub's one-second grace for a stalled write.
	const limit = 5000
	deadline := time.Now().Add(60 * time.Second)
	sent, lastID := 0, int64(0)
	for ; sent < limit && time.Now().Before(deadline); sent++ {
		sender.send(map[string]any{"type": "text", "text": body, "client_id": fmt.Sprintf("m%d", sent)})
		lastID = num(sender.nextType("ack"), "id")
		if r := srv.call(t, "GET", "/users/online", slowTok, nil); !strings.Contains(string(r.Raw), `"slow"`) {
			sent++
			break
		}
	}
	if sent == limit || !time.Now().Before(deadline) {
		t.Fatalf("the slow client was still connected after %d messages", sent)
	}
	t.Logf("slow client cut off after %d messages of %d bytes", sent, len(body))
	// Counted once in the metrics, and logged with its connection's id.
	if got := srv.mustScrape(t).value("mapsim_slow_clients_dropped_total"); got != 1 {
		t.Errorf("mapsim_slow_clients_dropped_total = %v, want 1", got)
	}
	if line := lastLine(srv.logs.String(), "slow client"); !strings.Contains(line, "conn_id=") {
		t.Errorf("no warning with a conn_id for the slow client: %q", line)
	}
	// The fast client got every message, in order.
	for i := 0; i < sent; i++ {
		f := fast.nextType("text")
		if f["client_id"] != fmt.Sprintf("m%d", i) {
			t.Fatalf("fast client's message %d is %v", i, f["client_id"])
		}
	}
	// The slow client reconnects and syncs everything it missed.
	again := srv.MustDial(t, slowTok, "global")
	again.send(map[string]any{"type": "sync", "after_id": 0})
	count := 0
	for {
		f := again.next(func(f map[string]any) bool { return f["type"] == "text" || f["type"] == "synced" })
		if f["type"] == "synced" {
			if num(f, "last_id") != lastID {
				t.Fatalf("synced up to %d, want %d", num(f, "last_id"), lastID)
			}
			break
		}
		count++
	}
	if count != sent {
		t.Fatalf("sync returned %d messages, %d were sent", count, sent)
	}
}

// TestDatabaseGoesAway: when MariaDB dies, readiness fails, sends get a
// clear error frame, nothing panics, and the connection stays open.
func TestDatabaseGoesAway(t *testing.T) {
	opts, kill := mariadbtest.Private(t)
	env := baseEnv(t, map[string]string{"DB_HOST": opts.Host, "DB_PORT": opts.Port, "DB_NAME": opts.Name, "DB_USER": opts.User})
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "dana")
	c := srv.MustDial(t, tok, "global")
	c.nextType("hello")
	c.send(map[string]any{"type": "text", "text": "while the database lives", "client_id": "d1"})
	c.nextType("ack")

	kill()
	if r := srv.call(t, "GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database gone: %d %s", r.Status, r.Raw)
	}
	if r := srv.call(t, "HEAD", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("HEAD /readyz with the database gone: %d", r.Status)
	}
	if r := srv.call(t, "GET", "/healthz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz: %d", r.Status)
	}
	c.send(map[string]any{"type": "text", "text": "into the void", "client_id": "d2"})
	f := c.next(func(f map[string]any) bool { return f["type"] == "error" || f["type"] == "ack" })
	if f["type"] != "error" || f["code"] != "unavailable" || f["client_id"] != "d2" {
		t.Fatalf("send with the database gone: %v", f)
	}
	if r := srv.call(t, "GET", "/messages/", tok, nil); r.Status != http.StatusServiceUnavailable || r.str("code") != "unavailable" {
		t.Fatalf("history with the database gone: %d %s", r.Status, r.Raw)
	}
	c.send(map[string]any{"type": "ping"})
	c.nextType("pong")
	if strings.Contains(srv.logs.String(), "panic") {
		t.Fatal("the server panicked")
	}
}

// TestAdminCommands: invite-only registration, closed registration with an
// admin-created account, and rotating SECRET_KEY.
func TestAdminCommands(t *testing.T) {
	env := baseEnv(t, map[string]string{"REGISTRATION": "invite"})
	delete(env, "SECRET_KEY") // use the generated file, which rotate-secret replaces
	admin := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &bytes.Buffer{}, nil)
		return out.String(), err
	}
	code, err := admin("", "invite", "-ttl", "1h")
	if err != nil || len(strings.TrimSpace(code)) < 20 {
		t.Fatalf("invite: %q %v", code, err)
	}
	code = strings.TrimSpace(code)

	srv := MustStart(t, env)
	reg := func(srv *testServer, name, invite string) apiResponse {
		return srv.call(t, "POST", "/register/", "", url.Values{"username": {name}, "password": {testPassword}, "invite": {invite}})
	}
	if r := reg(srv, "ivy", ""); r.Status != http.StatusForbidden {
		t.Fatalf("register without invite: %d %s", r.Status, r.Raw)
	}
	if r := reg(srv, "ivy", "wrong-code"); r.Status != http.StatusBadRequest {
		t.Fatalf("register with a wrong invite: %d %s", r.Status, r.Raw)
	}
	if r := reg(srv, "ivy", code); r.Status != http.StatusCreated {
		t.Fatalf("register with the invite: %d %s", r.Status, r.Raw)
	}
	if r := reg(srv, "ivan", code); r.Status != http.StatusBadRequest {
		t.Fatalf("register with a used invite: %d %s", r.Status, r.Raw)
	}
	tok := srv.MustLogin(t, "ivy", testPassword)
	c := srv.MustDial(t, tok, "global")
	c.send(map[string]any{"type": "text", "text": "sealed under the old secret", "client_id": "r1"})
	c.nextType("ack")
	srv.Stop(t)

	env["REGISTRATION"] = "closed"
	if out, err := admin("another-Long-passphrase-9\n", "create-user", "-username", "root-ann", "-admin"); err != nil || !strings.Contains(out, "role admin") {
		t.Fatalf("create-user: %q %v", out, err)
	}
	// It must say that it logs everyone out, as it does (below).
	if out, err := admin("", "rotate-secret", "-generate"); err != nil || !strings.Contains(out, "rewrapped 1 key versions") ||
		!strings.Contains(out, "logs everyone out") {
		t.Fatalf("rotate-secret: %q %v", out, err)
	}
	if out, _ := admin("", "help"); !strings.Contains(strings.Join(strings.Fields(out), " "), "logs everyone out") {
		t.Fatalf("admin help does not say that rotate-secret logs everyone out:\n%s", out)
	}
	srv2 := MustStart(t, env)
	if r := reg(srv2, "late", ""); r.Status != http.StatusForbidden {
		t.Fatalf("register while closed: %d %s", r.Status, r.Raw)
	}
	ann := srv2.MustLogin(t, "root-ann", "another-Long-passphrase-9")
	h := srv2.call(t, "GET", "/messages/", ann, nil)
	if msgs, _ := h.Body["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "sealed under the old secret" {
		t.Fatalf("history after rotating the secret: %s", h.Raw)
	}
	// The old token was signed with a key derived from the old secret.
	if r := srv2.call(t, "GET", "/messages/", tok, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token from before the rotation: %d", r.Status)
	}
	if out, err := admin("x\n", "reset-password", "-username", "root-ann"); err == nil {
		t.Fatalf("a weak password was accepted: %q", out)
	}
}

// TestTypingRelay: typing reaches the chat's other members, not the typist;
// starts are throttled and a stop always goes through.
func TestTypingRelay(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	a := srv.MustDial(t, srv.MustUser(t, "typist"), "global")
	b := srv.MustDial(t, srv.MustUser(t, "reader"), "global")
	a.nextType("hello")
	b.nextType("hello")
	a.send(map[string]any{"type": "typing", "chat_name": "global"})
	a.send(map[string]any{"type": "typing", "chat_name": "global"}) // within a second: throttled
	a.send(map[string]any{"type": "typing", "chat_name": "global", "typing": false})
	a.send(map[string]any{"type": "ping"})
	a.nextType("pong")
	var got []any
	for len(got) < 2 {
		f := b.nextType("typing")
		if f["username"] != "typist" || f["chat_name"] != "global" {
			t.Fatalf("typing frame %v", f)
		}
		got = append(got, f["typing"])
	}
	if fmt.Sprint(got) != "[true false]" {
		t.Fatalf("reader saw typing %v, want a start then a stop", got)
	}
	// Nothing more: the throttled start was dropped, and the typist saw none.
	b.send(map[string]any{"type": "ping"})
	if f := b.next(func(f map[string]any) bool { return f["type"] == "typing" || f["type"] == "pong" }); f["type"] != "pong" {
		t.Fatalf("reader got an extra %v", f)
	}
	a.send(map[string]any{"type": "ping"})
	if f := a.next(func(f map[string]any) bool { return f["type"] == "typing" || f["type"] == "pong" }); f["type"] != "pong" {
		t.Fatalf("typist got their own %v", f)
	}
}

// TestSendDuringDatabaseStall: with the database frozen, a send that cannot
// commit within COMMIT_TIMEOUT is answered "unavailable" (it never hangs
// without an answer), and once the database is back the client's resend
// with the same client id is stored exactly once.
func TestSendDuringDatabaseStall(t *testing.T) {
	opts, db := mariadbtest.PrivateServer(t)
	env := baseEnv(t, map[string]string{"DB_HOST": opts.Host, "DB_PORT": opts.Port, "DB_NAME": opts.Name, "DB_USER": opts.User, "COMMIT_TIMEOUT": "2s"})
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "dana")
	c := srv.MustDial(t, tok, "global")
	c.nextType("hello")
	c.send(map[string]any{"type": "text", "text": "before the stall", "client_id": "s1"})
	first := c.nextType("ack")

	db.Freeze()
	answered := func(clientID string) map[string]any {
		t.Helper()
		return c.next(func(f map[string]any) bool {
			return (f["type"] == "error" || f["type"] == "ack") && f["client_id"] == clientID
		})
	}
	c.send(map[string]any{"type": "text", "text": "during the stall", "client_id": "s2"})
	c.send(map[string]any{"type": "text", "text": "queued behind it", "client_id": "s3"})
	c.send(map[string]any{"type": "edit", "message_id": first["id"], "text": "edited in the stall", "client_id": "e1"})
	// The edit waits on the database in the reader, the messages in the
	// committer: their answers may come in either order.
	pending := map[string]bool{"s2": true, "s3": true, "e1": true}
	for len(pending) > 0 {
		f := c.next(func(f map[string]any) bool { id, _ := f["client_id"].(string); return pending[id] })
		if f["type"] != "error" || f["code"] != "unavailable" {
			t.Fatalf("during the stall: %v", f)
		}
		delete(pending, f["client_id"].(string))
	}
	c.send(map[string]any{"type": "ping"})
	c.nextType("pong")
	db.Thaw()

	for _, id := range []string{"s2", "s3"} {
		c.send(map[string]any{"type": "text", "text": "resent " + id, "client_id": id})
		if f := answered(id); f["type"] != "ack" {
			t.Fatalf("resend of %s after the stall: %v", id, f)
		}
	}
	h := srv.call(t, "GET", "/messages/", tok, nil)
	msgs, _ := h.Body["messages"].([]any)
	count := map[string]int{}
	for _, m := range msgs {
		count[m.(map[string]any)["client_id"].(string)]++
	}
	if h.Status != http.StatusOK || count["s1"] != 1 || count["s2"] != 1 || count["s3"] != 1 || len(msgs) != 3 {
		t.Fatalf("history after the stall: %d %s", h.Status, h.Raw)
	}
}
