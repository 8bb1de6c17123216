package main

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestNodesBehindNginx runs deploy/nginx-nodes.conf.example in Debian's
// nginx in front of three nodes, without sticky sessions: the checks of a
// single server through a proxy (the page, register, login, a ticket and
// its WebSocket, an upload), then members whose sockets land on different
// nodes talking in a group, one node killed with SIGKILL and its members
// reconnecting through nginx to the others and catching up.
func TestNodesBehindNginx(t *testing.T) {
	t.Parallel()
	nginx := needCommand(t, "nginx", "nginx-light")
	c := startCluster(t, 3, "ALLOWED_HOSTS", proxyHost, "TRUSTED_PROXIES", "127.0.0.1")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	certFile, keyFile, pool := selfSigned(t, dir)
	httpsPort, httpPort := freePort(t), freePort(t)
	port := func(i int) string {
		u, _ := url.Parse(c.node(i).URL)
		return u.Port()
	}
	site := fromExample(t, "nginx-nodes.conf.example",
		"listen 443 ssl http2;", "listen 127.0.0.1:"+httpsPort+" ssl http2;",
		"listen [::]:443 ssl http2;", "",
		"listen 80;", "listen 127.0.0.1:"+httpPort+";",
		"listen [::]:80;", "",
		"server_name chat.example.com;", "server_name "+proxyHost+";",
		"/etc/letsencrypt/live/chat.example.com/fullchain.pem", certFile,
		"/etc/letsencrypt/live/chat.example.com/privkey.pem", keyFile,
		"server 10.0.0.11:8000", "server 127.0.0.1:"+port(0),
		"server 10.0.0.12:8000", "server 127.0.0.1:"+port(1),
		"server 10.0.0.13:8000", "server 127.0.0.1:"+port(2),
	)
	os.WriteFile(filepath.Join(dir, "mapsim-chat.conf"), []byte(site), 0o644)
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/mapsim-chat.conf;
}
`, dir)
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(main), 0o644)
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	proxy := startProxy(t, "nginx", exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf))
	pc := newProxyClient(t, "https", httpsPort, pool)
	pc.waitReady(proxy)
	// Twice: the requests of each pass land on different nodes.
	pc.checkThroughProxy("via-nginx-1")
	pc.checkThroughProxy("via-nginx-2")

	// Members, all through nginx: their sockets spread over the nodes.
	front := &testServer{tb: t, URL: pc.base, client: pc.http}
	owner := front.MustUser(t, "owner")
	var names, tokens []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("member%d", i))
		tokens = append(tokens, front.MustUser(t, names[i]))
	}
	group, start := mustGroup(t, &nodeProc{testServer: front}, owner, "Behind nginx", names...)
	via := func() []string { return []string{pc.base} }
	dial := &websocket.DialOptions{HTTPClient: pc.http1}
	var members []*member
	for i, tok := range tokens {
		members = append(members, newMemberVia(t, names[i], tok, via, 0, dial, map[string]int64{group: start}))
	}
	for _, m := range members {
		m.nextEvent("synced", func(f map[string]any) bool { return f["type"] == "synced" })
	}
	var want []int64
	for i, m := range members {
		want = append(want, m.sendAcked(group, fmt.Sprintf("m%d-1", i), "hello from "+m.name))
	}
	for _, m := range members {
		m.waitHolds(group, sortedIDs(want), 30*time.Second)
	}
	// Which node holds whom, by the nodes' own count of connections.
	spread := 0
	for i := range 3 {
		if n := c.node(i).wsConnections(t); n > 0 {
			spread++
		}
	}
	if spread < 2 {
		t.Fatalf("nginx put every socket on one node")
	}

	// Kill a node that holds sockets: its members come back through nginx
	// to the others, and nothing is lost.
	victim := 0
	for i := range 3 {
		if c.node(i).wsConnections(t) > 0 {
			victim = i
		}
	}
	c.node(victim).kill9()
	for i, m := range members {
		want = append(want, m.sendAcked(group, fmt.Sprintf("m%d-2", i), "after the kill, from "+m.name))
	}
	for _, m := range members {
		m.waitHolds(group, sortedIDs(want), time.Minute)
	}
}

func sortedIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// wsConnections counts the WebSockets a node has accepted, from its
// request log.
func (n *nodeProc) wsConnections(t *testing.T) int {
	count := 0
	for _, line := range strings.Split(n.logs.String(), "\n") {
		if strings.Contains(line, "path=/ws ") && strings.Contains(line, "status=101") {
			count++
		}
	}
	return count
}
