package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExportRoundTrip: admin export writes a chat's history as json (which
// parses back to the messages as they were sent, edits as their final
// text, a deletion as deleted, a file by its name), txt (one line a
// message, further lines indented) and html (every text escaped: a
// <script> message is text, not script); an end-to-end encrypted chat is
// refused with the reason. On every backend.
func TestExportRoundTrip(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
			aWS, bWS := srv.MustDial(t, alice, "global"), srv.MustDial(t, bob, "global")
			aWS.nextType("hello")
			bWS.nextType("hello")
			send := func(ws *wsClient, frame map[string]any) int64 {
				t.Helper()
				ws.send(frame)
				return num(ws.next(func(f map[string]any) bool { return f["type"] == "ack" && f["client_id"] == frame["client_id"] }), "id")
			}
			const script = `<script>alert("x")</script> & "quotes" 'too'`
			up := srv.upload(t, bob, "", "report <1>.txt", "text/plain", strings.NewReader("the report"))
			ids := []int64{
				send(aWS, map[string]any{"type": "text", "text": "hello all", "client_id": "a1"}),
				send(bWS, map[string]any{"type": "text", "text": script, "client_id": "b1"}),
				send(aWS, map[string]any{"type": "text", "text": "line one\nline two\n[not a new message]", "client_id": "a2"}),
				send(aWS, map[string]any{"type": "text", "text": "first draft", "client_id": "a3"}),
				send(bWS, map[string]any{"type": "text", "text": "regrettable", "client_id": "b2"}),
				send(bWS, map[string]any{"type": "file", "text": up.str("file_url"), "client_id": "b3"}),
			}
			send(aWS, map[string]any{"type": "edit", "message_id": ids[3], "text": "final text", "client_id": "a3-e"})
			send(bWS, map[string]any{"type": "delete", "message_id": ids[4], "client_id": "b2-d"})

			dir := t.TempDir()
			for _, format := range []string{"json", "txt", "html"} {
				out := MustAdmin(t, env, "export", "-chat", "global", "-format", format, "-out", filepath.Join(dir, "global."+format))
				if !strings.Contains(out, "exported 6 messages of chat global") {
					t.Fatalf("export %s said: %s", format, out)
				}
			}
			read := func(name string) string {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return string(data)
			}

			// json: back to the same messages.
			var x chatExport
			if err := json.Unmarshal([]byte(read("global.json")), &x); err != nil {
				t.Fatal(err)
			}
			type want struct {
				user, typ, text string
				edited, deleted bool
				file            string
			}
			wants := []want{
				{"alice", "text", "hello all", false, false, ""},
				{"bob", "text", script, false, false, ""},
				{"alice", "text", "line one\nline two\n[not a new message]", false, false, ""},
				{"alice", "text", "final text", true, false, ""},
				{"bob", "text", "", false, true, ""},
				{"bob", "file", "report <1>.txt", false, false, "report <1>.txt"},
			}
			if x.Chat.Name != "global" || len(x.Messages) != len(wants) || strings.Join(x.Members, ",") != "alice,bob" {
				t.Fatalf("json export: %+v", x)
			}
			for i, w := range wants {
				m := x.Messages[i]
				file := ""
				if m.File != nil {
					file = m.File.Name
					if m.File.Size != int64(len("the report")) || m.File.Expired {
						t.Fatalf("file %+v", m.File)
					}
				}
				if m.ID != ids[i] || m.Username != w.user || m.Type != w.typ || m.Text != w.text || (m.EditedAt != nil) != w.edited ||
					m.Deleted != w.deleted || file != w.file || m.Timestamp.IsZero() || time.Since(m.Timestamp) > time.Hour {
					t.Fatalf("message %d exported as %+v, want %+v", i, m, w)
				}
			}

			// txt: a header, then one line a message.
			lines := strings.Split(strings.TrimSuffix(read("global.txt"), "\n"), "\n")
			starts := regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\] (alice|bob): `)
			var msgLines []string
			if lines[len(lines)-1] != "# 6 messages" {
				t.Fatalf("txt export ends %q", lines[len(lines)-1])
			}
			for _, l := range lines[2 : len(lines)-1] {
				if starts.MatchString(l) {
					msgLines = append(msgLines, l)
				} else if !strings.HasPrefix(l, "    ") {
					t.Fatalf("txt line is neither a message nor indented: %q", l)
				}
			}
			if !strings.HasPrefix(lines[0], "# Mapsim Chat: chat global") || len(msgLines) != 6 || len(lines) != 2+6+2+1 {
				t.Fatalf("txt export:\n%s", read("global.txt"))
			}
			for i, suffix := range []string{"alice: hello all", "bob: " + script, "alice: line one", "alice: final text (edited)",
				"bob: [message deleted]", "bob: [file: report <1>.txt, 10 bytes]"} {
				if !strings.HasSuffix(msgLines[i], suffix) {
					t.Fatalf("txt line %d = %q, want it to end %q", i, msgLines[i], suffix)
				}
			}

			// html: escaped, no script.
			page := read("global.html")
			if strings.Contains(page, "<script") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34; &#39;too&#39;") ||
				!strings.Contains(page, "report &lt;1&gt;.txt") || !strings.Contains(page, "final text") || !strings.Contains(page, "message deleted") ||
				!strings.Contains(page, "default-src 'none'") {
				t.Fatalf("html export:\n%s", page)
			}

			// In pages of two (with the edit and delete events among them)
			// the export is the same.
			exportPage = 2
			paged, err := adminIn(t, env, "", "export", "-chat", "global", "-format", "json")
			exportPage = 500
			var y chatExport
			if err != nil || json.Unmarshal([]byte(paged), &y) != nil {
				t.Fatalf("paged export: %v\n%s", err, paged)
			}
			y.ExportedAt = x.ExportedAt
			if a, b := jsonText(t, x), jsonText(t, y); a != b {
				t.Fatalf("in pages of two the export differs:\n%s\n%s", a, b)
			}
			// By the chat's id too.
			if out := MustAdmin(t, env, "export", "-chat", fmt.Sprint(x.Chat.ID), "-format", "txt"); !strings.Contains(out, "chat global (Global), exported") || !strings.Contains(out, "\n# 6 messages\n") {
				t.Fatalf("export by id:\n%s", out)
			}
			if !strings.Contains(page, "<footer><p>6 messages.</p></footer>") {
				t.Fatalf("html export has no count:\n%s", page)
			}
			// To standard output, and a file that exists is not overwritten.
			if out := MustAdmin(t, env, "export", "-chat", "global", "-format", "txt"); !strings.Contains(out, "bob: [message deleted]") {
				t.Fatalf("export to stdout:\n%s", out)
			}
			if _, err := adminIn(t, env, "", "export", "-chat", "global", "-format", "txt", "-out", filepath.Join(dir, "global.txt")); err == nil || !strings.Contains(err.Error(), "exists") {
				t.Fatalf("export over a file: %v", err)
			}

			// A group made without encryption, by name; then the same group marked
			// end-to-end encrypted in the database.
			r := srv.call(t, "POST", "/chats/", alice, map[string]any{"e2ee": false, "kind": "group", "title": "Ops", "members": []string{"bob"}})
			group := r.str("name")
			if group == "" {
				t.Fatalf("create group: %d %s", r.Status, r.Raw)
			}
			send(aWS, map[string]any{"type": "text", "chat_name": group, "text": "in the group", "client_id": "g1"})
			if out := MustAdmin(t, env, "export", "-chat", group, "-format", "txt"); !strings.Contains(out, "alice: in the group") || !strings.Contains(out, "(Ops)") {
				t.Fatalf("group export:\n%s", out)
			}
			if _, err := openRawDB(t, env).Exec(`UPDATE chats SET e2ee = 1 WHERE name = ?`, group); err != nil {
				t.Fatal(err)
			}
			_, err = adminIn(t, env, "", "export", "-chat", group, "-format", "json", "-out", filepath.Join(dir, "e2ee.json"))
			if err == nil || !strings.Contains(err.Error(), "end-to-end encrypted") || !strings.Contains(err.Error(), "cannot export") {
				t.Fatalf("export of an e2ee chat: %v", err)
			}
			if _, serr := os.Stat(filepath.Join(dir, "e2ee.json")); serr == nil {
				t.Fatal("a refused export left a file")
			}
			audit := MustAdmin(t, env, "audit")
			if !regexp.MustCompile(`export\s+global\s+6 messages as json to `).MatchString(audit) {
				t.Fatalf("audit:\n%s", audit)
			}
		})
	}
}

func jsonText(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
