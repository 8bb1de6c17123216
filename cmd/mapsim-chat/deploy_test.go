package main

import (
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
