package e2eeclient

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testPassword = "staple-Horse-battery-42"

// startServer builds mapsim-chat and runs `mapsim-chat serve` on a
// loopback port with a fresh SQLite database, until the test ends; it
// returns the server's address.
func startServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mapsim-chat")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/mapsim-chat")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mapsim-chat: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LISTEN_ADDR=127.0.0.1:0",
		"DATA_DIR=" + filepath.Join(dir, "data"), "UPLOAD_DIR=" + filepath.Join(dir, "uploads"),
		"SECRET_KEY=TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5", "LOG_FORMAT=text", "REGISTRATION_PER_HOUR=0",
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not listen within 60 s")
	}
	return ""
}

// mustAccount registers username, logs in and unlocks new keys.
func mustAccount(t *testing.T, base, username string) *Account {
	t.Helper()
	ctx := context.Background()
	api := &API{Base: base}
	if err := api.Do(ctx, http.MethodPost, "/register/", map[string]string{"username": username, "password": testPassword}, nil); err != nil {
		t.Fatal(err)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	if err := api.Do(ctx, http.MethodPost, "/login/", map[string]string{"username": username, "password": testPassword}, &login); err != nil {
		t.Fatal(err)
	}
	api.Token = login.AccessToken
	a, err := Unlock(ctx, api, username, filepath.Join(t.TempDir(), username+".json"), "passphrase of "+username)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEpochConflict: when another member starts the epoch this client was
// about to start, the server answers 409 and the client takes theirs: the
// same room key, no second epoch.
func TestEpochConflict(t *testing.T) {
	base := startServer(t)
	ctx := context.Background()
	alice, bob := mustAccount(t, base, "alice"), mustAccount(t, base, "bob")
	var direct struct {
		Name string `json:"name"`
		E2EE bool   `json:"e2ee"`
	}
	if err := alice.API.Do(ctx, http.MethodPost, "/chats/", map[string]any{"kind": "direct", "members": []string{"bob"}}, &direct); err != nil || !direct.E2EE {
		t.Fatalf("the direct chat: %+v %v", direct, err)
	}
	aliceChat, _, err := alice.OpenChat(ctx, direct.Name)
	if err != nil {
		t.Fatal(err)
	}
	bobChat, _, err := bob.OpenChat(ctx, direct.Name)
	if err != nil {
		t.Fatal(err)
	}
	// Bob starts epoch 1 first; alice, who also saw none, then tries it.
	epoch, bobKey, err := bobChat.sendingEpoch(ctx, false)
	if err != nil || epoch != 1 {
		t.Fatalf("bob's epoch %d, %v", epoch, err)
	}
	epoch, aliceKey, err := aliceChat.startNext(ctx, 1)
	if err != nil || epoch != 1 || aliceKey.Key != bobKey.Key {
		t.Fatalf("alice after the conflict: epoch %d, same key %v, %v", epoch, aliceKey.Key == bobKey.Key, err)
	}
	st, err := alice.API.Epochs(ctx, direct.Name)
	if err != nil || st.Current != 1 {
		t.Fatalf("epochs %+v, %v; want one", st, err)
	}
	// A message sealed on the adopted key opens for bob.
	text, err := aliceChat.Seal(ctx, "cli-conflict", Content{Text: "after the race"})
	if err != nil || !strings.HasPrefix(text, "mse1.1.") {
		t.Fatalf("sealed %q, %v", text, err)
	}
	got, err := bobChat.Decrypt(ctx, Message{ID: 1, Username: "alice", ClientID: "cli-conflict", Text: text})
	if err != nil || got.Text != "after the race" {
		t.Fatalf("bob opened %+v, %v", got, err)
	}
}
