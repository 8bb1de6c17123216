package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/testutil/mariadbtest"
)

// podman runs the podman command-line tool the way it runs on the build
// machines: runc as the runtime, and a containers.conf that sets no ulimits
// and manages cgroups without systemd (CONTAINERS_CONF names it, unless the
// environment already names one).
type podman struct {
	t    *testing.T
	path string
	env  []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	p := &podman{t: t, path: needCommand(t, "podman", "podman")}
	needCommand(t, "runc", "runc")
	p.env = os.Environ()
	if os.Getenv("CONTAINERS_CONF") == "" {
		conf := filepath.Join(t.TempDir(), "containers.conf")
		err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		p.env = append(p.env, "CONTAINERS_CONF="+conf)
	}
	return p
}

// run runs podman and returns its standard output; a failure fails the test.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *podman) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, append([]string{"--runtime", "runc"}, args...)...)
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return strings.TrimSpace(stdout.String()), nil
}

// logs is what a container wrote, standard output and standard error.
func (p *podman) logs(name string) string {
	cmd := exec.Command(p.path, "--runtime", "runc", "logs", name)
	cmd.Env = p.env
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// freePort is a loopback port nobody listens on at the moment.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// buildImage builds the Containerfile the way make image does, from a
// context holding only what it copies: deploy/container/ and a static
// linux binary for this machine's architecture.
func buildImage(t *testing.T, p *podman) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "linux-"+runtime.GOARCH, "mapsim-chat")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=container-test", "-o", bin, "./cmd/mapsim-chat")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, f := range []string{"Containerfile", "deploy/container/passwd", "deploy/container/group"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := "localhost/" + randomName("mapsim-chat-test:")
	p.run("build", "--format", "docker", "--platform", "linux/"+runtime.GOARCH, "-f", filepath.Join(dir, "Containerfile"), "-t", tag, dir)
	t.Cleanup(func() { p.try("rmi", "-f", tag) })
	return tag
}

// container is one running container of the image, published on a
// loopback port.
type container struct {
	*testServer
	name string
}

// startContainer runs the image with the volume at /data and waits until
// /healthz answers through the published port.
func startContainer(t *testing.T, p *podman, image, volume string) *container {
	t.Helper()
	port := freePort(t)
	// --read-only: the server writes nothing outside /data (podman gives
	// /tmp a tmpfs).
	return runContainer(t, p, port, "--read-only", "-p", "127.0.0.1:"+port+":8000", "-v", volume+":/data", image)
}

// runContainer runs a container with the given arguments and waits until
// /healthz answers on the loopback port.
func runContainer(t *testing.T, p *podman, port string, args ...string) *container {
	t.Helper()
	name := randomName("mapsim-chat-test-")
	p.run(append([]string{"run", "-d", "--name", name}, args...)...)
	t.Cleanup(func() { p.try("rm", "-f", "-t", "0", name) })
	c := &container{testServer: &testServer{tb: t, URL: "http://127.0.0.1:" + port, client: http.DefaultClient}, name: name}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if state, _ := p.try("inspect", "--format", "{{.State.Status}}", name); state != "running" || time.Now().After(deadline) {
			t.Fatalf("container %s is %s and /healthz did not answer: %v\nlogs:\n%s", name, state, err, p.logs(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainerImage builds the image with podman and runs it: /healthz
// and the image's HEALTHCHECK, register, login, a WebSocket message and an
// upload through the published port, a graceful stop, and everything still
// there in a new container on the same volume.
func TestContainerImage(t *testing.T) {
	started := time.Now()
	p := newPodman(t)
	image := buildImage(t, p)
	t.Logf("image built in %s", time.Since(started).Round(time.Millisecond))

	if user := p.run("image", "inspect", "--format", "{{.Config.User}}", image); user != "10001:10001" {
		t.Fatalf("the image runs as %q, want 10001:10001", user)
	}
	if hc := p.run("image", "inspect", "--format", "{{.Config.Healthcheck.Test}}", image); !strings.Contains(hc, "mapsim-chat healthcheck") {
		t.Fatalf("the image's HEALTHCHECK is %q", hc)
	}
	volume := randomName("mapsim-chat-test-")
	p.run("volume", "create", volume)
	t.Cleanup(func() { p.try("volume", "rm", "-f", volume) })

	c := startContainer(t, p, image, volume)
	if out, err := p.try("healthcheck", "run", c.name); err != nil {
		t.Fatalf("the image's HEALTHCHECK fails: %v\n%s", err, out)
	}
	if v := p.run("exec", c.name, "/usr/local/bin/mapsim-chat", "version"); v != "mapsim-chat container-test" {
		t.Fatalf("version in the container: %q", v)
	}
	if user := p.run("top", c.name, "user", "huser"); !strings.Contains(user, "mapsim-chat") || strings.Contains(user, "root") {
		t.Fatalf("the server runs as:\n%s", user)
	}

	tok := c.MustUser(t, "cora")
	ws := c.MustDial(t, tok, "global")
	ws.nextType("hello")
	ws.send(map[string]any{"type": "text", "text": "kept in the volume", "client_id": "v1"})
	ws.next(func(f map[string]any) bool { return f["type"] == "text" && f["text"] == "kept in the volume" })
	ws.nextType("ack")
	content := bytes.Repeat([]byte("sealed in /data/uploads\n"), 4000)
	up := c.upload(t, tok, "global", "notes.txt", "text/plain", bytes.NewReader(content))
	if up.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	ws.conn.CloseNow()

	// A graceful stop: SIGTERM, and the server exits 0.
	p.run("stop", "-t", "30", c.name)
	if code := p.run("inspect", "--format", "{{.State.ExitCode}}", c.name); code != "0" {
		t.Fatalf("the server exited %s on SIGTERM\n%s", code, p.logs(c.name))
	}
	p.run("rm", c.name)

	again := startContainer(t, p, image, volume)
	tok = again.MustLogin(t, "cora", testPassword)
	h := again.call(t, "GET", "/messages/?chat_id=global", tok, nil)
	if !strings.Contains(string(h.Raw), "kept in the volume") {
		t.Fatalf("history in a new container on the same volume: %d %s", h.Status, h.Raw)
	}
	resp, body, err := again.download(t, tok, up.str("file_url"), nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("the upload in a new container on the same volume: %v %v (%d bytes)", err, resp, len(body))
	}
	// The volume's files belong to the image's user, and the generated key
	// sits beside the database. (Rootless podman maps the numbers.)
	if mount, err := p.try("volume", "inspect", "--format", "{{.Mountpoint}}", volume); err == nil && os.Getuid() == 0 {
		for _, f := range []string{"chat.db", "secret.key", "uploads"} {
			info, err := os.Stat(filepath.Join(mount, f))
			if err != nil {
				t.Fatalf("the volume has no %s: %v", f, err)
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && (st.Uid != 10001 || st.Gid != 10001) {
				t.Fatalf("%s in the volume belongs to %d:%d, want 10001:10001", f, st.Uid, st.Gid)
			}
		}
	}
	t.Logf("container test took %s", time.Since(started).Round(time.Millisecond))
}

// composeEnvironment reads the environment: block of a service in
// deploy/compose.yaml (two-space indents, "NAME: value" lines), with
// ${NAME:-default} replaced by its default and ${NAME:?message} by set[NAME].
func composeEnvironment(t *testing.T, service string, set map[string]string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	env := map[string]string{}
	in, block := false, false
	subst := regexp.MustCompile(`\$\{([A-Z_]+):([-?])([^}]*)\}`)
	for _, line := range lines {
		switch {
		case line == "  "+service+":":
			in = true
		case in && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.TrimSpace(line) != "":
			in = false // the next service
		case in && line == "    environment:":
			block = true
		case block && strings.HasPrefix(line, "      "):
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				name, value, ok := strings.Cut(l, ": ")
				if !ok {
					t.Fatalf("compose.yaml: %q is not NAME: value", l)
				}
				value = subst.ReplaceAllStringFunc(strings.Trim(value, `"`), func(m string) string {
					g := subst.FindStringSubmatch(m)
					if g[2] == "-" {
						return g[3]
					}
					v, ok := set[g[1]]
					if !ok {
						t.Fatalf("compose.yaml needs %s; the test gives no value for it", g[1])
					}
					return v
				})
				env[name] = value
			}
		case block:
			block = false
		}
	}
	if len(env) == 0 {
		t.Fatalf("compose.yaml has no environment for %s", service)
	}
	return env
}

// TestContainerImageMariaDB runs the image as deploy/compose.yaml does, with
// the chat service's environment from that file, on a throwaway MariaDB in
// place of the db service (host networking, so the container reaches it on
// loopback; nothing can be pulled here, so compose itself does not run).
func TestContainerImageMariaDB(t *testing.T) {
	p := newPodman(t)
	db := mariadbtest.Options(t)
	image := buildImage(t, p)
	env := composeEnvironment(t, "chat", map[string]string{
		"DB_PASS": "", "SECRET_KEY": "TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5",
	})
	if env["DB_HOST"] != "db" || env["SECRET_KEY"] == "" {
		t.Fatalf("the chat service's environment: %v", env)
	}
	port := freePort(t)
	env["DB_HOST"], env["DB_PORT"], env["DB_NAME"], env["DB_USER"] = db.Host, db.Port, db.Name, db.User
	env["LISTEN_ADDR"] = "127.0.0.1:" + port
	args := []string{"--read-only", "--network", "host"}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	c := runContainer(t, p, port, append(args, image)...)
	if r := c.call(t, "GET", "/readyz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz on MariaDB: %d %s", r.Status, r.Raw)
	}
	if out, err := p.try("healthcheck", "run", c.name); err != nil {
		t.Fatalf("the image's HEALTHCHECK with LISTEN_ADDR=%s: %v\n%s", env["LISTEN_ADDR"], err, out)
	}
	ws := c.MustDial(t, c.MustUser(t, "maria"), "global")
	ws.nextType("hello")
	ws.send(map[string]any{"type": "text", "text": "stored in MariaDB", "client_id": "m1"})
	ws.nextType("ack")
	if logs := p.logs(c.name); !strings.Contains(logs, `"driver":"mysql"`) {
		t.Fatalf("the server did not run on MariaDB:\n%s", logs)
	}
}
