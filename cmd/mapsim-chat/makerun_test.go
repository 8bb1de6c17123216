package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needCommand returns the path of a program a test needs. Without it the
// test is skipped, and with CI=true it fails: CI installs everything.
func needCommand(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // not on every user's PATH
		if err != nil {
			if info, serr := os.Stat(filepath.Join(dir, name)); serr == nil && info.Mode()&0o111 != 0 {
				path, err = filepath.Join(dir, name), nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return path
}

// repoRoot is the repository's top folder (the tests run in cmd/mapsim-chat).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestMakeRunCtrlC: Ctrl-C on `make run` stops the server gracefully and
// make reports no error ("make: *** [run] Error 1" was printed while make
// ran the server through go run, which exits 1 when interrupted).
func TestMakeRunCtrlC(t *testing.T) {
	makePath := needCommand(t, "make", "make")
	dir := t.TempDir()
	cmd := exec.Command(makePath, "--no-print-directory", "-C", repoRoot(t), "run", "BIN="+filepath.Join(dir, "mapsim-chat"))
	cmd.Env = append(os.Environ(),
		"DATA_DIR="+filepath.Join(dir, "data"), "UPLOAD_DIR="+filepath.Join(dir, "uploads"), "LISTEN_ADDR=127.0.0.1:0")
	// Its own process group, as a terminal's foreground job: Ctrl-C sends
	// SIGINT to make and the server alike.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{listening: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	select {
	case <-out.listening:
	case err := <-exited:
		t.Fatalf("make run ended before the server listened: %v\n%s", err, out.String())
	case <-time.After(8 * time.Minute): // the first build on a fresh machine
		t.Fatalf("the server did not listen\n%s", out.String())
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not end on Ctrl-C\n%s", out.String())
	}
	// make passes the interrupt on by ending through SIGINT itself (a
	// shell shows nothing for that); any exit status means it saw a failure.
	if exit, ok := err.(*exec.ExitError); ok {
		if ws, _ := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("make run on Ctrl-C: %v, want a quiet end (exit 0 or SIGINT)", err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	logs := out.String()
	if strings.Contains(logs, "***") || !strings.Contains(logs, "msg=stopped") {
		t.Fatalf("Ctrl-C on make run should stop the server gracefully and print no make error:\n%s", logs)
	}
	if strings.Contains(logs, "exit status") {
		t.Fatalf("the server's exit status was reported:\n%s", logs)
	}
}
