package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestUploadQuotaAndRate: a user's uploads are held to UPLOAD_USER_QUOTA_MB
// (413, naming the quota) and to UPLOAD_RATE_PER_MINUTE (429 with
// Retry-After); what is refused is not stored, and other users keep their
// own allowance.
func TestUploadQuotaAndRate(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, b.env(t))
			env["UPLOAD_MAX_FILE_MB"] = "1"
			env["UPLOAD_USER_QUOTA_MB"] = "1"
			env["UPLOAD_RATE_PER_MINUTE"] = "1"
			env["UPLOAD_RATE_BURST"] = "3"
			srv := MustStart(t, env)
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")

			if r := srv.upload(t, alice, "", "a.bin", "", bytes.NewReader(bytes.Repeat([]byte("a"), 700<<10))); r.Status != http.StatusCreated {
				t.Fatalf("first upload: %d %s", r.Status, r.Raw)
			}
			r := srv.upload(t, alice, "", "b.bin", "", bytes.NewReader(bytes.Repeat([]byte("b"), 400<<10)))
			if r.Status != http.StatusRequestEntityTooLarge || r.str("code") != "too_large" || !strings.Contains(r.str("detail"), "quota of 1 MB") {
				t.Fatalf("past the quota: %d %s", r.Status, r.Raw)
			}
			if n := len(storedFiles(t, env["UPLOAD_DIR"])); n != 1 {
				t.Fatalf("%d files stored, want only the first", n)
			}
			if r := srv.upload(t, bob, "", "c.bin", "", bytes.NewReader(bytes.Repeat([]byte("c"), 700<<10))); r.Status != http.StatusCreated {
				t.Fatalf("bob, under his own quota: %d %s", r.Status, r.Raw)
			}

			// Alice's burst of three is spent (two above, one here); the
			// next is refused before its body is read.
			if r := srv.upload(t, alice, "", "d.txt", "", strings.NewReader("small")); r.Status != http.StatusCreated {
				t.Fatalf("third upload of the burst: %d %s", r.Status, r.Raw)
			}
			r = srv.upload(t, alice, "", "e.txt", "", strings.NewReader("one too many"))
			retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			if r.Status != http.StatusTooManyRequests || r.str("code") != "too_many" || retry < 1 || retry > 60 || !strings.Contains(r.str("detail"), "a minute") {
				t.Fatalf("past the rate: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Raw)
			}
			if n := len(storedFiles(t, env["UPLOAD_DIR"])); n != 3 {
				t.Fatalf("%d files stored, want 3", n)
			}
			if r := srv.upload(t, bob, "", "f.txt", "", strings.NewReader("bob's own rate")); r.Status != http.StatusCreated {
				t.Fatalf("bob while alice is limited: %d %s", r.Status, r.Raw)
			}
		})
	}
}

// trickle is an upload body that yields its bytes a piece at a time, one
// piece each interval: a large file on a slow link.
type trickle struct {
	piece    []byte
	left     int
	interval time.Duration
	started  bool
	done     atomic.Bool
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.left == 0 {
		r.done.Store(true)
		return 0, io.EOF
	}
	if r.started {
		time.Sleep(r.interval) // the link's pace, not a wait for a condition
	}
	r.started = true
	r.left--
	return copy(p, r.piece), nil
}

// stall sends one piece and then nothing until released.
type stall struct {
	piece   []byte
	sent    bool
	release chan struct{}
}

func (r *stall) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, r.piece), nil
	}
	<-r.release
	return 0, errors.New("the client gave up")
}

// TestSlowUploads: an upload is held to UPLOAD_IDLE_TIMEOUT between bytes,
// not to a total time: one that trickles in for longer than both the idle
// timeout and REQUEST_READ_TIMEOUT succeeds, one that stops sending fails
// with a clear answer and leaves nothing behind, and other requests still
// have REQUEST_READ_TIMEOUT to send their bodies.
func TestSlowUploads(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, map[string]string{"UPLOAD_IDLE_TIMEOUT": "2", "REQUEST_READ_TIMEOUT": "1"})
	srv := MustStart(t, env)
	alice := srv.MustUser(t, "alice")

	t.Run("keeps sending", func(t *testing.T) {
		// 16 pieces, 200 ms apart: over 3 s in all, never 2 s without a byte.
		body := &trickle{piece: bytes.Repeat([]byte("slow but steady "), 256), left: 16, interval: 200 * time.Millisecond}
		start := time.Now()
		r := srv.upload(t, alice, "", "slow.txt", "text/plain", body)
		if r.Status != http.StatusCreated {
			t.Fatalf("slow upload after %v: %d %s", time.Since(start), r.Status, r.Raw)
		}
		if took := time.Since(start); took < 3*time.Second {
			t.Fatalf("the upload took only %v; the test needs it slower than both timeouts", took)
		}
		resp, got, err := srv.download(t, alice, r.str("file_url"), nil)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, bytes.Repeat(body.piece, 16)) {
			t.Fatalf("download: %v %v, %d bytes", err, resp.Status, len(got))
		}
	})

	t.Run("stops sending", func(t *testing.T) {
		before := storedFiles(t, env["UPLOAD_DIR"])
		body := &stall{piece: bytes.Repeat([]byte("then nothing "), 1000), release: make(chan struct{})}
		defer close(body.release)
		answered := make(chan apiResponse, 1)
		go func() { answered <- srv.upload(t, alice, "", "stalled.txt", "text/plain", body) }()
		var r apiResponse
		select {
		case r = <-answered:
		case <-time.After(30 * time.Second):
			t.Fatal("no answer 30 s after the upload stopped sending; the idle timeout is 2 s")
		}
		if r.Status != http.StatusBadRequest || !strings.Contains(r.str("detail"), "nothing arrived for 2 seconds") {
			t.Fatalf("stalled upload: %d %s", r.Status, r.Raw)
		}
		if after := storedFiles(t, env["UPLOAD_DIR"]); len(after) != len(before) {
			t.Fatalf("the stalled upload left files: before %v, after %v", before, after)
		}
		if r := srv.upload(t, alice, "", "next.txt", "text/plain", strings.NewReader("fine")); r.Status != http.StatusCreated {
			t.Fatalf("the next upload: %d %s", r.Status, r.Raw)
		}
	})

	t.Run("other requests", func(t *testing.T) {
		// A login body sent over 3 s is cut off after REQUEST_READ_TIMEOUT.
		form := url.Values{"username": {"alice"}, "password": {testPassword}}.Encode()
		body := &trickle{piece: []byte(form[:1]), left: 16, interval: 200 * time.Millisecond}
		req, _ := http.NewRequest("POST", srv.URL+"/login/", io.MultiReader(body, strings.NewReader(form[1:])))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			t.Fatal("a login body trickled in over 3 s was accepted")
		}
		if body.done.Load() {
			t.Fatal("the server read the whole slow body: nothing bounded it")
		}
	})
}

// TestLeftoversRemovedAtStart: what a crash leaves in the upload folder (an
// unfinished upload, a stored file never recorded) is gone after the next
// start; stored files and anything not named as ours stay.
func TestLeftoversRemovedAtStart(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	alice := srv.MustUser(t, "alice")
	up := srv.upload(t, alice, "", "keep.txt", "text/plain", strings.NewReader("kept across restarts"))
	if up.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	srv.Stop(t)

	dir := env["UPLOAD_DIR"]
	plant := func(rel string) string {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("left by a crash"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crashed := []string{plant("tmp/upload-4242.part"), plant("ab/ab" + strings.Repeat("7", 30))}
	foreign := plant("ab/README.txt")

	srv = MustStart(t, env)
	for _, p := range crashed {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the start", p)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file not named as ours was removed: %v", err)
	}
	if !strings.Contains(srv.logs.String(), "removed files a crash left") {
		t.Error("the sweep was not logged")
	}
	tok := srv.MustLogin(t, "alice", testPassword)
	if resp, body, _ := srv.download(t, tok, up.str("file_url"), nil); resp.StatusCode != 200 || string(body) != "kept across restarts" {
		t.Fatalf("the stored file after the restart: %s %q", resp.Status, body)
	}
}
