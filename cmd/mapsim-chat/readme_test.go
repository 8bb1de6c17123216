package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the first ```sh block after a heading of README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no heading %q", heading)
	}
	rest := readme[i:]
	open := strings.Index(rest, "\n```sh\n")
	if open < 0 {
		t.Fatalf("no ```sh block after %q", heading)
	}
	rest = rest[open+len("\n```sh\n"):]
	end := strings.Index(rest, "\n```\n")
	if end < 0 {
		t.Fatalf("the block after %q does not end", heading)
	}
	return rest[:end+1]
}

// TestREADMEWalkthrough runs the README's curl walk-through, as written,
// against a fresh server (only the port differs), in bash with -e and
// pipefail, so that the README cannot drift from what the server does.
// Each curl must show its failures (-sS --fail-with-body), and a file it
// uploads must be made by the walk-through itself.
func TestREADMEWalkthrough(t *testing.T) {
	bash := needCommand(t, "bash", "bash")
	needCommand(t, "curl", "curl")
	block := readmeBlock(t, "## Try it with curl")

	commands := strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n")
	var curls int
	for _, line := range commands {
		for _, call := range regexp.MustCompile(`\bcurl\b[^|)]*`).FindAllString(line, -1) {
			curls++
			if !strings.Contains(call, " -sS ") || !strings.Contains(call, " --fail-with-body ") {
				t.Errorf("this curl hides its failures (use -sS --fail-with-body): %s", strings.TrimSpace(call))
			}
		}
		for _, m := range regexp.MustCompile(`file=@(\S+)`).FindAllStringSubmatch(line, -1) {
			if !strings.Contains(block, "> "+m[1]+"\n") {
				t.Errorf("the walk-through uploads %s but never makes it", m[1])
			}
		}
	}
	if curls < 5 {
		t.Fatalf("found only %d curl calls in the walk-through:\n%s", curls, block)
	}

	env := baseEnv(t, nil)
	delete(env, "REGISTRATION_PER_HOUR") // the default, as a reader's server has it
	srv := MustStart(t, env)
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	if !strings.Contains(block, "localhost:8000/") {
		t.Fatalf("the walk-through no longer talks to localhost:8000:\n%s", block)
	}
	script := strings.ReplaceAll(block, "localhost:8000/", "localhost:"+port+"/")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's walk-through failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"username":"alice"`, `"username":"bob"`, `"messages":[`, `"ticket":"`, `"name":"notes.txt"`, `"title":"Ops"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walk-through's output has no %s:\n%s", want, out)
		}
	}
}

// TestDocumentsNamedExist: every document the top-level documents name
// (DESIGN.md was named and never there) is in the repository.
func TestDocumentsNamedExist(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	files := strings.Fields(string(out))
	named := regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)
	for _, doc := range []string{"README.md", "ARCHITECTURE.md", "E2EE.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range named.FindAllString(string(data), -1) {
			found := false
			for _, f := range files {
				// A path names that file; a bare name may sit in any folder.
				if f == name || (!strings.Contains(name, "/") && filepath.Base(f) == name) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s names %s, which is not in the repository", doc, name)
			}
		}
	}
}
