package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMain runs the real command (the test binary acting as main) in an
// empty folder with only the given environment, and returns its exit code
// and output.
func runMain(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append([]string{"MAPSIM_CHAT_AS_MAIN=1"}, env...)
	cmd.Dir = t.TempDir() // no .env there
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mapsim-chat %s did not end within 60 s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errOut.String())
	}
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatalf("run mapsim-chat: %v", err)
	}
	return 0, out.String(), errOut.String()
}

// TestHelpExitsZero: -h and --help print the command's usage and exit 0,
// for every command, without doing the command (serve -h starts nothing).
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // in the usage printed
	}{
		{[]string{"-h"}, "usage: mapsim-chat"},
		{[]string{"--help"}, "usage: mapsim-chat"},
		{[]string{"help"}, "usage: mapsim-chat"},
		{[]string{"serve", "-h"}, "usage: mapsim-chat"},
		{[]string{"serve", "--help"}, "usage: mapsim-chat"},
		{[]string{"migrate", "-h"}, "usage: mapsim-chat"},
		{[]string{"admin", "-h"}, "usage: mapsim-chat admin"},
		{[]string{"admin", "--help"}, "usage: mapsim-chat admin"},
		{[]string{"admin", "create-user", "-h"}, "usage: mapsim-chat admin"},
		{[]string{"admin", "rotate-secret", "--help"}, "usage: mapsim-chat admin"},
		{[]string{"chat", "-h"}, "-username"},
		{[]string{"chat", "--help"}, "-username"},
		{[]string{"healthcheck", "-h"}, "-url"},
		{[]string{"healthcheck", "--help"}, "-timeout"},
		{[]string{"version", "-h"}, "mapsim-chat"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			data := filepath.Join(t.TempDir(), "data")
			// A configuration that would stop serve and admin at once: help
			// must not even read it.
			code, stdout, stderr := runMain(t, []string{"DATA_DIR=" + data, "LISTEN_ADDR=127.0.0.1:0", "MAX_MESSAGE_BYTES=lots"}, tt.args...)
			if code != 0 || !strings.Contains(stdout, tt.want) {
				t.Fatalf("exit %d, want 0 and a usage with %q\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatalf("asking for help created %s", data)
			}
		})
	}
	// A mistake is still one.
	if code, _, _ := runMain(t, nil, "chat", "-bogus"); code != 1 {
		t.Fatalf("chat -bogus: exit %d, want 1", code)
	}
	if code, _, _ := runMain(t, nil, "frobnicate"); code != 1 {
		t.Fatalf("an unknown command: exit %d, want 1", code)
	}
}

// TestHealthcheck: mapsim-chat healthcheck exits 0 while the server
// answers /healthz and 1 when it does not, whether it is given -url or
// finds the server from LISTEN_ADDR.
func TestHealthcheck(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)

	if code, stdout, stderr := runMain(t, nil, "healthcheck", "-url", srv.URL); code != 0 || !strings.Contains(stdout, "200") {
		t.Fatalf("healthcheck -url %s: exit %d\n%s%s", srv.URL, code, stdout, stderr)
	}
	// LISTEN_ADDR as a container sets it: every interface, so the check
	// asks loopback.
	for _, addr := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		if code, stdout, stderr := runMain(t, []string{"LISTEN_ADDR=" + addr}, "healthcheck"); code != 0 {
			t.Fatalf("healthcheck with LISTEN_ADDR=%s: exit %d\n%s%s", addr, code, stdout, stderr)
		}
	}

	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "sick", http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()
	if code, _, stderr := runMain(t, nil, "healthcheck", "-url", unhealthy.URL); code != 1 || !strings.Contains(stderr, "503") {
		t.Fatalf("healthcheck against a 503: exit %d, stderr %s", code, stderr)
	}
	srv.Stop(t)
	if code, _, stderr := runMain(t, []string{"LISTEN_ADDR=127.0.0.1:" + port}, "healthcheck", "-timeout", "2s"); code != 1 || !strings.Contains(stderr, "healthcheck") {
		t.Fatalf("healthcheck with the server stopped: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr := runMain(t, []string{"LISTEN_ADDR=nowhere"}, "healthcheck"); code != 1 || !strings.Contains(stderr, "LISTEN_ADDR") {
		t.Fatalf("healthcheck with a bad LISTEN_ADDR: exit %d, stderr %s", code, stderr)
	}
}
