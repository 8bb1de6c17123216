package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBackupProgressOnTerminal: on a terminal, backup and restore show how
// far they have got on one line they rewrite and clear; elsewhere they do
// not (TestBackupRestoreUnderLoad reads the plain output).
func TestBackupProgressOnTerminal(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "pia")
	srv.upload(t, tok, "", "big.bin", "application/octet-stream", strings.NewReader(strings.Repeat("x", 3<<20)))
	master, tty := openPTY(t)
	shown := &screen{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			shown.mu.Lock()
			shown.buf.Write(b[:n])
			shown.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	runOnTTY := func(e map[string]string, args ...string) {
		t.Helper()
		err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return e[k] },
			strings.NewReader(""), tty, tty, nil)
		if err != nil {
			t.Fatalf("admin %v: %v", args, err)
		}
	}
	waitShown := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(shown.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the terminal never showed %q:\n%q", want, shown.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	runOnTTY(env, "backup", "-out", archive)
	waitShown("wrote " + archive)
	out := shown.String()
	if !strings.Contains(out, "\rwriting the archive: 100% (") || !strings.Contains(out, "\r\x1b[K") {
		t.Fatalf("no progress line on the terminal:\n%q", out)
	}
	runOnTTY(baseEnv(t, nil), "restore", "-in", archive)
	waitShown("Every checksum matched")
	if !strings.Contains(shown.String(), "\rrestoring: ") {
		t.Fatalf("no restore progress:\n%q", shown.String())
	}
}
