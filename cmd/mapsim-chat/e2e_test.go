package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite"
)

// TestGlobalChat is the walk-through: two users chat in global over
// WebSockets, a late joiner catches up with sync, the server restarts on
// the same database and the history is intact, and the text of a message
// is nowhere in the database.
func TestGlobalChat(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice := srv.MustUser(t, "alice")
			bob := srv.MustUser(t, "Bob")

			a := srv.MustDial(t, alice, "global")
			if f := a.nextType("hello"); f["username"] != "alice" || f["chat_name"] != "global" {
				t.Fatalf("hello = %v", f)
			}
			bc := srv.MustDial(t, bob, "global")
			bc.nextType("hello")
			// alice sees bob come online.
			a.next(func(f map[string]any) bool {
				return f["type"] == "presence" && f["username"] == "Bob" && f["online"] == true
			})

			const marker = "zebra-marker-7f3a9c: the eagle lands at noon"
			a.send(map[string]any{"type": "text", "chat_name": "global", "text": marker, "client_id": "alice-1"})
			ack := a.nextType("ack")
			if ack["client_id"] != "alice-1" || num(ack, "id") <= 0 {
				t.Fatalf("ack = %v", ack)
			}
			got := bc.nextType("text")
			if got["text"] != marker || got["username"] != "alice" || got["chat_name"] != "global" ||
				num(got, "id") != num(ack, "id") || got["client_id"] != "alice-1" || got["timestamp"] == "" {
				t.Fatalf("bob got %v", got)
			}

			// A resend of the same client id is stored once and acked again
			// with the same id, and not broadcast again.
			a.send(map[string]any{"type": "text", "chat_name": "global", "text": marker, "client_id": "alice-1"})
			ack2 := a.nextType("ack")
			if num(ack2, "id") != num(ack, "id") || ack2["duplicate"] != true {
				t.Fatalf("second ack = %v, first %v", ack2, ack)
			}
			bc.send(map[string]any{"type": "text", "text": "hi alice", "client_id": "bob-1"})
			bobAck := bc.nextType("ack")
			if next := a.nextType("text"); next["text"] != "hi alice" {
				t.Fatalf("alice's next message is %v, want bob's (a duplicate was broadcast?)", next)
			}
			// A client without a client_id still works.
			a.send(map[string]any{"type": "text", "text": "no client id"})
			plain := a.nextType("ack")
			if plain["client_id"] == "" || num(plain, "id") <= num(bobAck, "id") {
				t.Fatalf("ack without client id = %v", plain)
			}

			// carol joins late and catches up with sync.
			carol := srv.MustUser(t, "carol")
			cc := srv.MustDial(t, carol, "global")
			cc.send(map[string]any{"type": "sync", "chat_name": "global", "after_id": 0})
			var texts []string
			var last int64
			for {
				f := cc.next(func(f map[string]any) bool { return f["type"] == "text" || f["type"] == "synced" })
				if f["type"] == "synced" {
					if num(f, "last_id") != num(plain, "id") {
						t.Fatalf("synced = %v, want last_id %d", f, num(plain, "id"))
					}
					break
				}
				if num(f, "id") <= last {
					t.Fatalf("sync out of order: %d after %d", num(f, "id"), last)
				}
				last = num(f, "id")
				texts = append(texts, f["text"].(string))
			}
			if want := []string{marker, "hi alice", "no client id"}; fmt.Sprint(texts) != fmt.Sprint(want) {
				t.Fatalf("carol synced %q, want %q", texts, want)
			}

			// History over REST, in keyset pages.
			page := srv.call(t, "GET", "/messages/?chat_id=global&limit=2", carol, nil)
			msgs, _ := page.Body["messages"].([]any)
			if page.Status != http.StatusOK || len(msgs) != 2 || page.Body["has_more"] != true {
				t.Fatalf("page 1: %d %s", page.Status, page.Raw)
			}
			first := msgs[0].(map[string]any)
			if first["text"] != "hi alice" || first["type"] != "text" {
				t.Fatalf("page 1 starts with %v, want bob's message (oldest first within the page)", first)
			}
			older := srv.call(t, "GET", fmt.Sprintf("/messages?chat_id=global&limit=2&before=%d", num(first, "id")), carol, nil)
			msgs, _ = older.Body["messages"].([]any)
			if len(msgs) != 1 || older.Body["has_more"] != false || msgs[0].(map[string]any)["text"] != marker {
				t.Fatalf("page 2: %s", older.Raw)
			}

			// Restart on the same database: history and the old token survive.
			srv.Stop(t)
			srv2 := MustStart(t, env)
			hist := srv2.call(t, "GET", "/messages/?chat_id=global", alice, nil)
			msgs, _ = hist.Body["messages"].([]any)
			if hist.Status != http.StatusOK || len(msgs) != 3 || msgs[0].(map[string]any)["text"] != marker {
				t.Fatalf("history after restart: %d %s", hist.Status, hist.Raw)
			}
			// The restart made a second key version; both still open.
			a2 := srv2.MustDial(t, alice, "global")
			a2.send(map[string]any{"type": "text", "text": "after restart", "client_id": "alice-2"})
			a2.nextType("ack")
			hist = srv2.call(t, "GET", "/messages/?chat_id=global", alice, nil)
			if msgs, _ = hist.Body["messages"].([]any); len(msgs) != 4 {
				t.Fatalf("history after restart and send: %s", hist.Raw)
			}

			// The marker is nowhere at rest.
			assertNotAtRest(t, env, marker)
			srv2.Stop(t)
			for _, l := range []*syncBuffer{srv.logs, srv2.logs} {
				for _, secret := range []string{marker, alice, bob, testPassword} {
					if strings.Contains(l.String(), secret) {
						t.Errorf("a log line contains a secret or message body (%.20s…)", secret)
					}
				}
			}
		})
	}
}

// assertNotAtRest checks that a message text is not stored in plain text:
// every file of the SQLite database, or every stored body on MariaDB.
func assertNotAtRest(t *testing.T, env map[string]string, marker string) {
	t.Helper()
	if env["DB_HOST"] == "" {
		files, _ := filepath.Glob(filepath.Join(env["DATA_DIR"], "chat.db*"))
		if len(files) == 0 {
			t.Fatalf("no database files in %s", env["DATA_DIR"])
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), marker) || strings.Contains(string(b), "hi alice") {
				t.Fatalf("%s contains a message text in the clear", f)
			}
		}
		return
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s@tcp(%s:%s)/%s", env["DB_USER"], env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, total int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*), SUM(INSTR(body, ?) > 0) FROM messages`, marker).Scan(&total, &n); err != nil {
		t.Fatal(err)
	}
	if total == 0 || n != 0 {
		t.Fatalf("%d of %d stored bodies contain the marker", n, total)
	}
}

// TestRegisterAndLogin covers the account rules as a curl user meets them.
func TestRegisterAndLogin(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	if r := srv.call(t, "POST", "/register/", "", form("username", "Dora", "password", "a fine long passphrase", "email", "dora@example.com")); r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"same name other case", form("username", "dORA", "password", "another long passphrase"), 409, "conflict"},
		{"same email", map[string]string{"username": "dora2", "password": "another long passphrase", "email": "dora@example.com"}, 409, "conflict"},
		{"short name", form("username", "d", "password", "another long passphrase"), 400, "invalid"},
		{"bad characters", form("username", "dora<script>", "password", "another long passphrase"), 400, "invalid"},
		{"short password", form("username", "erin", "password", "short"), 400, "invalid"},
		{"common password", form("username", "erin", "password", "password123"), 400, "invalid"},
		{"bad email", form("username", "erin", "password", "another long passphrase", "email", "not an email"), 400, "invalid"},
		{"json number", map[string]any{"username": "erin", "password": 12345678}, 400, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := srv.call(t, "POST", "/register", "", c.body)
			if r.Status != c.status || r.str("code") != c.code || r.str("detail") == "" {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, c.status, c.code)
			}
		})
	}

	// Login is case-insensitive on the name, and a wrong name and a wrong
	// password get the same answer.
	srv.MustLogin(t, "DORA", "a fine long passphrase")
	wrongUser := srv.call(t, "POST", "/login/", "", form("username", "nobody", "password", "a fine long passphrase"))
	wrongPass := srv.call(t, "POST", "/login/", "", form("username", "dora", "password", "not the passphrase"))
	if wrongUser.Status != 401 || wrongPass.Status != 401 || string(wrongUser.Raw) != string(wrongPass.Raw) {
		t.Fatalf("wrong user %d %s, wrong password %d %s", wrongUser.Status, wrongUser.Raw, wrongPass.Status, wrongPass.Raw)
	}

	// Repeated failures are throttled with Retry-After, even for the right
	// password.
	var last apiResponse
	for i := 0; i < 6; i++ {
		last = srv.call(t, "POST", "/login/", "", form("username", "dora", "password", "guess-"+fmt.Sprint(i)))
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" || last.str("code") != "too_many" {
		t.Fatalf("after 6 failures: %d %s", last.Status, last.Raw)
	}
	if r := srv.call(t, "POST", "/login/", "", form("username", "dora", "password", "a fine long passphrase")); r.Status != 429 {
		t.Fatalf("locked-out login with the right password: %d", r.Status)
	}
}

// TestMovedCiphertextDoesNotOpen: someone with write access to the database
// copies Alice's sealed body onto Bob's row. The body is bound to its row,
// so history shows an undecryptable message rather than Bob "saying" it,
// and the rest of the page is served.
func TestMovedCiphertextDoesNotOpen(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
	for i, u := range []struct{ tok, text string }{{alice, "alice's secret words"}, {bob, "bob's own words"}, {alice, "a bystander"}} {
		c := srv.MustDial(t, u.tok, "global")
		c.send(map[string]any{"type": "text", "text": u.text, "client_id": fmt.Sprint("x", i)})
		c.nextType("ack")
		c.conn.CloseNow()
	}
	srv.Stop(t)

	db, err := sql.Open("sqlite", filepath.Join(env["DATA_DIR"], "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE messages SET body = (SELECT body FROM messages WHERE id = 1), key_version = (SELECT key_version FROM messages WHERE id = 1) WHERE id = 2`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tamper: %v", err)
	}
	db.Close()

	srv2 := MustStart(t, env)
	h := srv2.call(t, "GET", "/messages/?chat_id=global", bob, nil)
	msgs, _ := h.Body["messages"].([]any)
	if h.Status != http.StatusOK || len(msgs) != 3 {
		t.Fatalf("history: %d %s", h.Status, h.Raw)
	}
	texts := []string{}
	for _, m := range msgs {
		texts = append(texts, m.(map[string]any)["text"].(string))
	}
	if texts[0] != "alice's secret words" || texts[1] != "[this message could not be decrypted]" || texts[2] != "a bystander" {
		t.Fatalf("history after moving a body: %q", texts)
	}
}
