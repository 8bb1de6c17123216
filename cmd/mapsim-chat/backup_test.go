package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// MustAllMessages reads a chat's whole history through the API, oldest
// first, as id → message.
func (s *testServer) MustAllMessages(t testing.TB, token, chatName string) map[int64]map[string]any {
	t.Helper()
	out := map[int64]map[string]any{}
	before := ""
	for {
		r := s.call(t, "GET", "/messages/?chat_id="+chatName+"&limit=100"+before, token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("history: %d %s", r.Status, r.Raw)
		}
		msgs, _ := r.Body["messages"].([]any)
		for _, m := range msgs {
			mm := m.(map[string]any)
			out[num(mm, "id")] = mm
		}
		if more, _ := r.Body["has_more"].(bool); !more || len(msgs) == 0 {
			return out
		}
		before = fmt.Sprintf("&before=%d", num(msgs[0].(map[string]any), "id"))
	}
}

// sender is one client sending messages one after another, each after the
// ack of the one before.
type sender struct {
	conn *websocket.Conn
	mu   sync.Mutex
	sent []string          // client ids in the order sent
	text map[string]string // client id → text
	ack  map[string]int64  // client id → the id it was acknowledged with
}

func (c *sender) acked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ack)
}

// run sends until stop is closed; it returns the first failure.
func (c *sender) run(n int, stop <-chan struct{}) error {
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		cid := fmt.Sprintf("c%02d-%05d", n, i)
		text := fmt.Sprintf("client %d message %d", n, i)
		c.mu.Lock()
		c.sent = append(c.sent, cid)
		c.text[cid] = text
		c.mu.Unlock()
		data, _ := json.Marshal(map[string]any{"type": "text", "text": text, "client_id": cid})
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := c.conn.Write(wctx, websocket.MessageText, data)
		cancel()
		if err != nil {
			return err
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, raw, err := c.conn.Read(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("waiting for the ack of %s: %w", cid, err)
			}
			var f map[string]any
			json.Unmarshal(raw, &f)
			if f["type"] == "error" {
				return fmt.Errorf("error frame: %s", raw)
			}
			if f["type"] == "ack" && f["client_id"] == cid {
				c.mu.Lock()
				c.ack[cid] = num(f, "id")
				c.mu.Unlock()
				break
			}
		}
	}
}

// TestBackupRestoreUnderLoad: admin backup copies a running SQLite server
// while 20 clients send; the archive restores into a fresh folder; a server
// started on it holds every message acknowledged before the backup began,
// with its id and text, and of each client's messages exactly a prefix of
// what it sent (a consistent snapshot, nothing torn), and serves the file
// uploaded before. The archive lists its checksums; a damaged one, a
// folder that is not empty and another SECRET_KEY are refused, and leave
// nothing behind.
func TestBackupRestoreUnderLoad(t *testing.T) {
	env := withoutRateLimits(baseEnv(t, nil))
	srv := MustStart(t, env)
	const clients = 20
	tokens := make([]string, clients)
	senders := make([]*sender, clients)
	for i := range clients {
		tokens[i] = srv.MustUser(t, fmt.Sprintf("user%02d", i))
		ws := srv.MustDial(t, tokens[i], "global")
		ws.nextType("hello")
		ws.conn.CloseNow() // the sender opens its own, read by it alone
		r := srv.call(t, "POST", "/ws-ticket/", tokens[i], nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, _, err := websocket.Dial(ctx, srv.wsURL("ticket="+r.str("ticket")+"&chat_name=global"), nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadLimit(1 << 20)
		t.Cleanup(func() { conn.CloseNow() })
		senders[i] = &sender{conn: conn, text: map[string]string{}, ack: map[string]int64{}}
	}
	content := strings.Repeat("backed-up file content ", 1000)
	up := srv.upload(t, tokens[0], "", "kept.txt", "text/plain", strings.NewReader(content))
	if up.str("file_url") == "" {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}

	stop := make(chan struct{})
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Go(func() { errs <- s.run(i, stop) })
	}
	total := func() int {
		n := 0
		for _, s := range senders {
			n += s.acked()
		}
		return n
	}
	waitTotal := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for total() < n {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("only %d messages acknowledged within 60 s", total())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitTotal(300)
	before := make([]map[string]int64, clients) // acknowledged before the backup began
	for i, s := range senders {
		s.mu.Lock()
		before[i] = make(map[string]int64, len(s.ack))
		for k, v := range s.ack {
			before[i][k] = v
		}
		s.mu.Unlock()
	}
	archive := filepath.Join(t.TempDir(), "backup.tar.gz")
	start := time.Now()
	out := MustAdmin(t, env, "backup", "-out", archive)
	took := time.Since(start)
	atBackup := total()
	waitTotal(atBackup + 200) // the server went on taking messages
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a sender: %v", err)
		}
	}
	t.Logf("backup of a server under load took %s; %d messages acknowledged before it began, %d by its end, %d in all",
		took, countAll(before), atBackup, total())
	if !strings.Contains(out, "wrote "+archive) || !strings.Contains(out, "1 uploaded files") || strings.Contains(out, "\r") {
		t.Fatalf("backup said: %q", out)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v, %v", fi, err)
	}
	if _, err := adminIn(t, env, "", "backup", "-out", archive); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a backup over an existing file: %v", err)
	}
	srv.Stop(t)

	// The archive: secret first, the manifest last, every checksum listed.
	names, m := readArchive(t, archive)
	if names[0] != "secret.key" || names[1] != "chat.db" || names[len(names)-1] != "manifest.json" || len(names) < 4 {
		t.Fatalf("archive entries: %q", names)
	}
	if m.Format != "mapsim-chat-backup" || m.SchemaVersion < 7 || len(m.Files) != len(names)-1 || m.Driver != "sqlite" {
		t.Fatalf("manifest: %+v", m)
	}

	// Restore into a fresh folder, with the same SECRET_KEY.
	fresh := baseEnv(t, nil)
	out = MustAdmin(t, fresh, "restore", "-in", archive)
	if !strings.Contains(out, "Every checksum matched") {
		t.Fatalf("restore said: %s", out)
	}
	if _, err := adminIn(t, fresh, "", "restore", "-in", archive); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("restore over a restored folder: %v", err)
	}
	restored := MustStart(t, fresh)
	tok := restored.MustLogin(t, "user00", testPassword)
	got := restored.MustAllMessages(t, tok, "global")
	byClient := map[string]map[string]any{}
	for _, m := range got {
		if cid, _ := m["client_id"].(string); cid != "" {
			byClient[cid] = m
		}
	}
	for i, s := range senders {
		for cid, id := range before[i] {
			m := byClient[cid]
			if m == nil || num(m, "id") != id || m["text"] != s.text[cid] {
				t.Fatalf("message %s (id %d), acknowledged before the backup, restored as %v", cid, id, m)
			}
		}
		// A prefix of what the client sent: none missing before one kept.
		gap := false
		for _, cid := range s.sent {
			_, in := byClient[cid]
			if in && gap {
				t.Fatalf("client %d: %s restored after a message it sent earlier was not", i, cid)
			}
			gap = gap || !in
		}
	}
	if r := restored.call(t, "GET", up.str("file_url"), tok, nil); r.Status != http.StatusOK || string(r.Raw) != content {
		t.Fatalf("the file after restore: %d, %d bytes", r.Status, len(r.Raw))
	}
	if !strings.Contains(MustAdmin(t, fresh, "audit"), "restore") {
		t.Fatal("the restore is not in the restored audit trail")
	}

	// Refusals that leave the folder as it was.
	damaged := filepath.Join(t.TempDir(), "damaged.tar.gz")
	data, _ := os.ReadFile(archive)
	data[len(data)/2] ^= 0x55
	os.WriteFile(damaged, data, 0o600)
	clean := baseEnv(t, nil)
	if _, err := adminIn(t, clean, "", "restore", "-in", damaged); err == nil {
		t.Fatal("a damaged archive restored")
	}
	other := baseEnv(t, map[string]string{"SECRET_KEY": "b3RoZXItc2VjcmV0LWtleS1vZi0zMi1ieXRlcy0wMTI="})
	if _, err := adminIn(t, other, "", "restore", "-in", archive); err == nil || !strings.Contains(err.Error(), "not the key in this backup") {
		t.Fatalf("restore under another SECRET_KEY: %v", err)
	}
	for _, e := range []map[string]string{clean, other} {
		for _, dir := range []string{e["DATA_DIR"], e["UPLOAD_DIR"]} {
			if files := filesUnder(t, dir); len(files) != 0 {
				t.Fatalf("a refused restore left %q in %s", files, dir)
			}
		}
	}
	// Rewritten archives: one byte of an upload changed (the gzip and tar
	// are sound; only the manifest's checksum tells), an entry that climbs
	// out of the upload folder, and one with no manifest.
	for _, tt := range []struct {
		name string
		edit func(name string, data []byte) (string, []byte, bool)
		want string
	}{
		{"changed upload", func(name string, data []byte) (string, []byte, bool) {
			if strings.HasPrefix(name, "uploads/") {
				data = append([]byte{}, data...)
				data[len(data)/2] ^= 1
			}
			return name, data, true
		}, "does not match its checksum"},
		{"escaping entry", func(name string, data []byte) (string, []byte, bool) {
			if strings.HasPrefix(name, "uploads/") {
				name = "uploads/../../escaped"
			}
			return name, data, true
		}, "points outside the upload folder"},
		{"no manifest", func(name string, data []byte) (string, []byte, bool) {
			return name, data, name != "manifest.json"
		}, "has no manifest"},
	} {
		edited := filepath.Join(t.TempDir(), "edited.tar.gz")
		rewriteArchive(t, archive, edited, tt.edit)
		e := baseEnv(t, nil)
		if _, err := adminIn(t, e, "", "restore", "-in", edited); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if files := append(filesUnder(t, e["DATA_DIR"]), filesUnder(t, e["UPLOAD_DIR"])...); len(files) != 0 {
			t.Fatalf("%s: a refused restore left %q", tt.name, files)
		}
		if _, err := os.Stat(filepath.Join(e["UPLOAD_DIR"], "..", "..", "escaped")); err == nil {
			t.Fatalf("%s: an entry was written outside the upload folder", tt.name)
		}
	}
	if _, err := adminIn(t, clean, "", "restore", "-in", filepath.Join(t.TempDir(), "none.tar.gz")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore of a missing file: %v", err)
	}
}

func countAll(m []map[string]int64) int {
	n := 0
	for _, x := range m {
		n += len(x)
	}
	return n
}

// rewriteArchive copies a backup archive through edit, which may rename an
// entry, change its content or (false) drop it.
func rewriteArchive(t testing.TB, src, dst string, edit func(name string, data []byte) (string, []byte, bool)) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	gz, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tr, tw := tar.NewReader(gz), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		name, data, keep := edit(h.Name, data)
		if !keep {
			continue
		}
		h.Name, h.Size = name, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// readArchive lists a backup's entries and decodes its manifest.
func readArchive(t testing.TB, p string) ([]string, manifest) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	var m manifest
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, m
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// filesUnder lists the regular files under dir (none if it is missing).
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestBackupMySQL: with MySQL/MariaDB, backup writes no archive: it prints
// the mysqldump line (the password asked for, never printed) and what else
// to keep, and exits 1 so that a script does not take it for a backup;
// restore refuses and points to mysql.
func TestBackupMySQL(t *testing.T) {
	env := baseEnv(t, backends()[1].env(t))
	env["DB_PASS"] = "not-the-real-one-7"
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	code, stdout, stderr := runMain(t, envList(env), "admin", "backup", "-out", out)
	if code != 1 || !strings.Contains(stdout, "mysqldump --single-transaction") || !strings.Contains(stdout, "-p "+env["DB_NAME"]) ||
		!strings.Contains(stdout, env["UPLOAD_DIR"]) || !strings.Contains(stdout, "SECRET_KEY") || !strings.Contains(stderr, "no archive written") ||
		strings.Contains(stdout+stderr, env["DB_PASS"]) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an archive was written")
	}
	if code, _, stderr := runMain(t, envList(env), "admin", "restore", "-in", out); code != 1 || !strings.Contains(stderr, "mysql") {
		t.Fatalf("restore on MySQL: exit %d: %s", code, stderr)
	}
}

// TestBackupWithoutSecret: backup -no-secret leaves SECRET_KEY out of the
// archive, for operators who keep the key apart from their backups; its
// restore needs SECRET_KEY set, refuses without it (leaving nothing), and
// then serves the history.
func TestBackupWithoutSecret(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "gil")
	ws := srv.MustDial(t, tok, "global")
	ws.nextType("hello")
	ws.send(map[string]any{"type": "text", "text": "kept without the key", "client_id": "g1"})
	ws.nextType("ack")
	archive := filepath.Join(t.TempDir(), "nokey.tar.gz")
	if out := MustAdmin(t, env, "backup", "-out", archive, "-no-secret"); !strings.Contains(out, "does not hold SECRET_KEY") {
		t.Fatalf("backup -no-secret said: %s", out)
	}
	srv.Stop(t)
	names, m := readArchive(t, archive)
	if strings.Contains(strings.Join(names, ","), "secret.key") || m.SecretIncluded || !m.UploadsIncluded {
		t.Fatalf("entries %q, manifest %+v", names, m)
	}
	keyless := baseEnv(t, nil)
	delete(keyless, "SECRET_KEY")
	if _, err := adminIn(t, keyless, "", "restore", "-in", archive); err == nil || !strings.Contains(err.Error(), "set SECRET_KEY") {
		t.Fatalf("restore without a key: %v", err)
	}
	if files := append(filesUnder(t, keyless["DATA_DIR"]), filesUnder(t, keyless["UPLOAD_DIR"])...); len(files) != 0 {
		t.Fatalf("a refused restore left %q", files)
	}
	fresh := baseEnv(t, nil)
	MustAdmin(t, fresh, "restore", "-in", archive)
	restored := MustStart(t, fresh)
	got := restored.MustAllMessages(t, restored.MustLogin(t, "gil", testPassword), "global")
	if len(got) != 1 {
		t.Fatalf("restored %d messages", len(got))
	}
	for _, m := range got {
		if m["text"] != "kept without the key" {
			t.Fatalf("restored %v", m)
		}
	}

	// -force replaces a folder in use (stopped): its database, log and
	// all, with the backup's.
	ws = restored.MustDial(t, restored.MustLogin(t, "gil", testPassword), "global")
	ws.nextType("hello")
	ws.send(map[string]any{"type": "text", "text": "after the backup", "client_id": "g2"})
	ws.nextType("ack")
	restored.Stop(t)
	if _, err := adminIn(t, fresh, "", "restore", "-in", archive); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("restore over a used folder: %v", err)
	}
	MustAdmin(t, fresh, "restore", "-in", archive, "-force")
	again := MustStart(t, fresh)
	if got := again.MustAllMessages(t, again.MustLogin(t, "gil", testPassword), "global"); len(got) != 1 {
		t.Fatalf("after restore -force, %d messages", len(got))
	}
}
