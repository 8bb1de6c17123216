package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
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
// its WebSocket, an upload), the client's address as the nodes see it,
// then members whose sockets land on different nodes talking in a group,
// one node killed with SIGKILL and its members reconnecting through nginx
// to the others and catching up (checkNodesBehind).
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
		"/var/log/nginx/mapsim-chat.access.log", filepath.Join(dir, "site.log"),
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
	id := checkClientAddress(t, c, httpsPort, pool)
	if id == plantedRequestID || !wellFormedNginxID(id) {
		t.Fatalf("X-Request-Id %q: nginx should have replaced the client's with its $request_id", id)
	}
	tokens := checkNodesBehind(t, c, pc, "nginx")

	// nginx logs each request under the id the node got, WebSockets
	// included, without their tickets and tokens (nginx writes a line when
	// the request ends: the killed node's sockets ended with it).
	logFile := filepath.Join(dir, "site.log")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), " /ws ") && strings.Contains(string(b), " "+id+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx's site log has no WebSocket line or no line ending in request id %s within 30 s:\n%s", id, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(logFile)
	for _, secret := range append(tokens, "ticket=", "token=", "?") {
		if strings.Contains(string(b), secret) {
			t.Fatalf("nginx logged a query string, ticket or token (%.20s…)", secret)
		}
	}
}

// wellFormedNginxID reports whether s reads as nginx's $request_id: 32
// lower-case hex digits.
func wellFormedNginxID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// TestNodesBehindHAProxy runs deploy/haproxy-nodes.cfg.example in Debian's
// HAProxy in front of three nodes, with the checks of TestNodesBehindNginx,
// and what is HAProxy's own: the page over HTTP/2, plain HTTP redirected,
// the client's X-Request-Id replaced, the killed node marked down by its
// health checks, and no ticket or token in HAProxy's log.
func TestNodesBehindHAProxy(t *testing.T) {
	t.Parallel()
	haproxy := needCommand(t, "haproxy", "haproxy")
	c := startCluster(t, 3, "ALLOWED_HOSTS", proxyHost, "TRUSTED_PROXIES", "127.0.0.1")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	// HAProxy takes the certificate and its key in one file, as the deploy
	// hook in the example writes it.
	cert, _ := os.ReadFile(certFile)
	key, _ := os.ReadFile(keyFile)
	pem := filepath.Join(dir, "chat.test.pem")
	os.WriteFile(pem, append(cert, key...), 0o600)
	httpsPort, httpPort := freePort(t), freePort(t)
	port := func(i int) string {
		u, _ := url.Parse(c.node(i).URL)
		return u.Port()
	}
	site := fromExample(t, "haproxy-nodes.cfg.example",
		"bind :::443 v4v6 ssl crt /etc/haproxy/certs/chat.example.com.pem", "bind 127.0.0.1:"+httpsPort+" ssl crt "+pem,
		"bind :::80 v4v6", "bind 127.0.0.1:"+httpPort,
		"server node1 10.0.0.11:8000", "server node1 127.0.0.1:"+port(0),
		"server node2 10.0.0.12:8000", "server node2 127.0.0.1:"+port(1),
		"server node3 10.0.0.13:8000", "server node3 127.0.0.1:"+port(2),
	)
	siteFile := filepath.Join(dir, "mapsim-chat.cfg")
	os.WriteFile(siteFile, []byte(site), 0o644)
	// Debian's /etc/haproxy/haproxy.cfg, which the example is appended to:
	// its defaults as they are, its global reduced to what runs in the
	// foreground as the test's user (no chroot, no user switch, no stats
	// socket in /run), logging to standard output.
	global := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(global, []byte(`global
	log stdout format raw local0

defaults
	log	global
	mode	http
	option	httplog
	option	dontlognull
	timeout connect 5000
	timeout client  50000
	timeout server  50000
	errorfile 400 /etc/haproxy/errors/400.http
	errorfile 403 /etc/haproxy/errors/403.http
	errorfile 408 /etc/haproxy/errors/408.http
	errorfile 500 /etc/haproxy/errors/500.http
	errorfile 502 /etc/haproxy/errors/502.http
	errorfile 503 /etc/haproxy/errors/503.http
	errorfile 504 /etc/haproxy/errors/504.http
`), 0o644)
	// The operator's check, warnings included: a line HAProxy 2.6 takes
	// with a warning is a line it may not do what the comment says.
	out, err := exec.Command(haproxy, "-c", "-f", global, "-f", siteFile).CombinedOutput()
	if err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	proxy := startProxy(t, "haproxy", exec.Command(haproxy, "-db", "-f", global, "-f", siteFile))
	pc := newProxyClient(t, "https", httpsPort, pool)
	pc.waitReady(proxy)

	resp, _ := pc.do("GET", "/", "", "", nil)
	if resp.ProtoMajor != 2 {
		t.Errorf("HAProxy served the page over %s, want HTTP/2", resp.Proto)
	}
	plain := newProxyClient(t, "http", httpPort, pool)
	if resp, _ := plain.do("GET", "/login?next=1", "", "", nil); resp.StatusCode != http.StatusMovedPermanently ||
		!strings.HasPrefix(resp.Header.Get("Location"), "https://"+proxyHost) || !strings.HasSuffix(resp.Header.Get("Location"), "/login?next=1") {
		t.Fatalf("plain HTTP: %d to %q, want a 301 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	id := checkClientAddress(t, c, httpsPort, pool)
	if id == plantedRequestID || !wellFormedUUID(id) {
		t.Fatalf("X-Request-Id %q: HAProxy should have replaced the client's with a UUID of its own", id)
	}

	tokens := checkNodesBehind(t, c, pc, "haproxy")

	// The killed node was taken out (a refused connection, then the health
	// checks), and HAProxy logged each request under the id the node got,
	// WebSockets included, without their tickets and tokens.
	victim := -1
	for i := range 3 {
		if c.node(i).dead.Load() {
			victim = i
		}
	}
	down := fmt.Sprintf("mapsim_chat_nodes/node%d is DOWN", victim+1)
	deadline := time.Now().Add(30 * time.Second)
	for log := proxy.out.String(); !strings.Contains(log, down) || !strings.Contains(log, " /ws"); log = proxy.out.String() {
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy's log has no %q or no WebSocket line within 30 s", down)
		}
		time.Sleep(20 * time.Millisecond)
	}
	log := proxy.out.String()
	for _, secret := range append(tokens, "ticket=", "token=") {
		if strings.Contains(log, secret) {
			t.Fatalf("HAProxy logged a ticket or token (%.20s…)", secret)
		}
	}
	if !strings.Contains(log, " "+id+"\n") {
		t.Errorf("HAProxy's log has no line ending in request id %s", id)
	}
}

// wellFormedUUID reports whether s reads as a UUID (8-4-4-4-12 hex digits).
func wellFormedUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}

// checkNodesBehind runs, through a balancer in front of a cluster's three
// nodes, the checks of a single server behind a proxy twice (the requests
// of each pass land on different nodes), then members whose sockets the
// balancer spreads over the nodes talking in a group, then one node killed
// with SIGKILL: its members reconnect through the balancer to the others
// and catch up, and the checks of a single server pass again, the balancer
// skipping the dead node. Last, a WebSocket left idle stays open past the
// server's ping interval. It returns the members' access tokens.
func checkNodesBehind(t *testing.T, c *cluster, pc *proxyClient, balancer string) (tokens []string) {
	t.Helper()
	pc.checkThroughProxy("via-" + balancer + "-1")
	pc.checkThroughProxy("via-" + balancer + "-2")

	front := &testServer{tb: t, URL: pc.base, client: pc.http}
	owner := front.MustUser(t, "owner")
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("member%d", i))
		tokens = append(tokens, front.MustUser(t, names[i]))
	}
	group, start := mustGroup(t, &nodeProc{testServer: front}, owner, "Behind "+balancer, names...)
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
		t.Fatalf("%s put every socket on one node", balancer)
	}

	// Kill a node that holds sockets: its members come back through the
	// balancer to the others, and nothing is lost.
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
	// New requests, a POST among them, go to the nodes that are left.
	pc.checkThroughProxy("via-" + balancer + "-3")

	// Last, when all is quiet: a socket nobody sends on outlives the
	// server's ping interval.
	openIdleSocket(t, pc, "idle-"+balancer).check()
	return tokens
}

// idleSocket is a WebSocket opened through a balancer and left alone, as a
// browser tab nobody types in.
type idleSocket struct {
	t      *testing.T
	user   string
	conn   *websocket.Conn
	opened time.Time
	frames chan map[string]any
	ended  chan error
}

// idleFor is how long an idle socket must stay open through a balancer:
// past the server's ping every 25 s, so that a balancer closing sockets
// silent for less than that fails.
const idleFor = 30 * time.Second

func openIdleSocket(t *testing.T, pc *proxyClient, user string) *idleSocket {
	t.Helper()
	form := url.Values{"username": {user}, "password": {testPassword}}.Encode()
	if resp, raw := pc.do("POST", "/register/", "", "application/x-www-form-urlencoded", strings.NewReader(form)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	_, raw := pc.do("POST", "/login/", "", "application/x-www-form-urlencoded", strings.NewReader(form))
	_, raw = pc.do("POST", "/ws-ticket/", pc.jsonField(raw, "access_token"), "", nil)
	ticket := pc.jsonField(raw, "ticket")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(pc.base, "http")+"/ws?chat_name=global&ticket="+url.QueryEscape(ticket),
		&websocket.DialOptions{HTTPClient: pc.http1, HTTPHeader: http.Header{"Origin": {pc.origin}}})
	if err != nil {
		t.Fatalf("the idle WebSocket: %v", err)
	}
	s := &idleSocket{t: t, user: user, conn: conn, opened: time.Now(), frames: make(chan map[string]any, 10000), ended: make(chan error, 1)}
	// Reading answers the server's pings.
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				s.ended <- err
				return
			}
			var f map[string]any
			json.Unmarshal(data, &f)
			s.frames <- f
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	return s
}

// check waits until the socket has been open for idleFor and then sends
// on it: it must still be open, and the message acknowledged.
func (s *idleSocket) check() {
	s.t.Helper()
	select {
	case err := <-s.ended:
		s.t.Fatalf("the idle WebSocket was closed after %s: %v", time.Since(s.opened).Round(time.Second), err)
	case <-time.After(time.Until(s.opened.Add(idleFor))):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	frame, _ := json.Marshal(map[string]string{"type": "text", "chat_name": "global", "text": "still here", "client_id": s.user + "-1"})
	if err := s.conn.Write(ctx, websocket.MessageText, frame); err != nil {
		s.t.Fatalf("the idle WebSocket, after %s: %v", time.Since(s.opened).Round(time.Second), err)
	}
	for {
		select {
		case f := <-s.frames:
			if f["type"] == "ack" && f["client_id"] == s.user+"-1" {
				return
			}
		case err := <-s.ended:
			s.t.Fatalf("the idle WebSocket was closed after %s: %v", time.Since(s.opened).Round(time.Second), err)
		case <-ctx.Done():
			s.t.Fatalf("the idle WebSocket: no ack within 20 s")
		}
	}
}

// plantedRequestID is the X-Request-Id checkClientAddress sends.
const plantedRequestID = "planted-by-the-client"

// checkClientAddress asks for the page through the balancer on port from
// 127.0.0.2, sending an X-Forwarded-For, an X-Forwarded-Host and an
// X-Request-Id of its own, and checks that the node answered the name asked
// (the balancer replaced the X-Forwarded-Host) and logged 127.0.0.2 as the
// client: the balancer appended the address it saw, and the node, trusting
// 127.0.0.1 (the balancer) only, believed nothing further left. It returns
// the request id the answer carried.
func checkClientAddress(t *testing.T, c *cluster, port string, pool *x509.CertPool) string {
	t.Helper()
	pc := newProxyClientFrom(t, "https", port, pool, "127.0.0.2")
	req, _ := http.NewRequest("GET", pc.base+"/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Host", "elsewhere.example")
	req.Header.Set("X-Request-Id", plantedRequestID)
	resp, err := pc.http.Do(req)
	if err != nil {
		t.Fatalf("GET / from 127.0.0.2: %v", err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		// 421: the node took the client's X-Forwarded-Host for the name asked.
		t.Fatalf("GET / from 127.0.0.2 with a planted X-Forwarded-Host: %d, X-Request-Id %q", resp.StatusCode, id)
	}
	// The node logs the request once it has answered it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i := range 3 {
			for _, line := range strings.Split(c.node(i).logs.String(), "\n") {
				if !strings.Contains(line, "request_id="+id+" ") || !strings.Contains(line, "path=/ ") {
					continue
				}
				if !strings.Contains(line, "client_ip=127.0.0.2") {
					t.Fatalf("the node took the client for someone else (a planted X-Forwarded-For 203.0.113.9, the client 127.0.0.2):\n%s", line)
				}
				return id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node logged request %s within 10 s", id)
		}
		time.Sleep(20 * time.Millisecond)
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
