package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallScriptDESTDIR: deploy/install.sh with DESTDIR stages every
// file under that folder, with the modes the service needs, without root
// and without touching the machine; and its header says so.
func TestInstallScriptDESTDIR(t *testing.T) {
	bash := needCommand(t, "bash", "bash")
	root := repoRoot(t)
	script := filepath.Join(root, "deploy", "install.sh")
	header, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(header), "#   DESTDIR=") {
		t.Error("deploy/install.sh does not document DESTDIR in its header")
	}

	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	binary := filepath.Join(dir, "mapsim-chat")
	os.WriteFile(binary, []byte("#!/bin/sh\necho staged\n"), 0o755)
	// Stand-ins for the tools that change the machine, first on PATH, that
	// fail loudly if the script calls them: with DESTDIR it must not.
	tools := filepath.Join(dir, "bin")
	os.Mkdir(tools, 0o755)
	for _, name := range []string{"systemctl", "useradd", "chown"} {
		os.WriteFile(filepath.Join(tools, name), []byte("#!/bin/sh\necho \"$0 was called\" >&2\nexit 99\n"), 0o755)
	}
	cmd := exec.Command(bash, script)
	cmd.Env = []string{"PATH=" + tools + ":/usr/bin:/bin", "DESTDIR=" + stage, "BINARY=" + binary}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh with DESTDIR: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/mapsim-chat":              0o755,
		"etc/systemd/system/mapsim-chat.service": 0o644,
		"etc/mapsim-chat":                        0o750 | os.ModeDir,
		"etc/mapsim-chat/env":                    0o600,
		"var/lib/mapsim-chat/data":               0o700 | os.ModeDir,
		"var/lib/mapsim-chat/uploads":            0o700 | os.ModeDir,
	} {
		info, err := os.Stat(filepath.Join(stage, path))
		if err != nil {
			t.Errorf("DESTDIR has no %s: %v", path, err)
			continue
		}
		if info.Mode()&(os.ModeDir|os.ModePerm) != mode {
			t.Errorf("%s has mode %v, want %v", path, info.Mode(), mode)
		}
	}
	env, _ := os.ReadFile(filepath.Join(stage, "etc/mapsim-chat/env"))
	if !strings.Contains(string(env), "SECRET_KEY=") || !strings.Contains(string(env), "DATA_DIR=/var/lib/mapsim-chat/data") {
		t.Errorf("the staged env file:\n%s", env)
	}
}

// TestSystemdUnitVerifies: systemd-analyze verify finds nothing to say about
// deploy/mapsim-chat.service (an unknown or misspelt key, a bad value, a
// missing section). Only the binary's path is changed, to a file that
// exists here. A unit with a misspelt key is checked too, so that a verify
// that stopped reporting would fail this test instead of passing it.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := needCommand(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	binary := filepath.Join(dir, "mapsim-chat")
	if err := os.WriteFile(binary, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "mapsim-chat.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/mapsim-chat serve") {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/mapsim-chat serve; update this test with it")
	}
	verify := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ours := strings.ReplaceAll(string(unit), "/usr/local/bin/mapsim-chat", binary)
	if out := verify("mapsim-chat.service", ours); out != "" {
		t.Errorf("systemd-analyze verify deploy/mapsim-chat.service:\n%s", out)
	}
	misspelt := strings.Replace(ours, "ProtectHome=yes", "ProtectHomes=yes", 1)
	if out := verify("misspelt.service", misspelt); !strings.Contains(out, "ProtectHomes") {
		t.Errorf("systemd-analyze verify said nothing of a misspelt key (%q): this test could not fail", out)
	}
}
