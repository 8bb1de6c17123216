package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// proxyHost is the name the proxies serve in the tests; the test's client
// resolves it to 127.0.0.1.
const proxyHost = "chat.test"

// fromExample reads a file of deploy/ and makes each replacement, every one
// of which must apply: the example itself is what the test runs, and an
// edit that moves a line the test relies on fails here, not in production.
func fromExample(t *testing.T, name string, replacements ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for i := 0; i+1 < len(replacements); i += 2 {
		if !strings.Contains(text, replacements[i]) {
			t.Fatalf("deploy/%s no longer has %q; update the example or this test", name, replacements[i])
		}
		text = strings.ReplaceAll(text, replacements[i], replacements[i+1])
	}
	return text
}

// selfSigned writes a certificate and key for proxyHost and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: proxyHost}, DNSNames: []string{proxyHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// proxyProcess is a proxy running in the foreground.
type proxyProcess struct {
	name   string
	out    syncBuffer
	exited chan struct{} // closed when it has ended, err set
	err    error
}

// startProxy runs a proxy until the test ends, when it is stopped by its
// pid.
func startProxy(t *testing.T, name string, cmd *exec.Cmd) *proxyProcess {
	t.Helper()
	p := &proxyProcess{name: name, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// proxyClient talks to a proxy as a browser on https://chat.test:port would.
type proxyClient struct {
	t      *testing.T
	base   string // scheme://chat.test:port
	http   *http.Client
	http1  *http.Client // WebSockets go over HTTP/1.1
	origin string
}

func newProxyClient(t *testing.T, scheme, port string, pool *x509.CertPool) *proxyClient {
	return newProxyClientFrom(t, scheme, port, pool, "")
}

// newProxyClientFrom is newProxyClient with the connections made from a
// loopback address of the test's choice ("" for any), so that a client can
// be told apart from the proxy, which talks to the nodes from 127.0.0.1.
func newProxyClientFrom(t *testing.T, scheme, port string, pool *x509.CertPool, from string) *proxyClient {
	dialer := &net.Dialer{}
	if from != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(addr)
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
	}
	transport := func(h2 bool) *http.Transport {
		return &http.Transport{DialContext: dial, ForceAttemptHTTP2: h2, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: proxyHost}}
	}
	base := scheme + "://" + proxyHost + ":" + port
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &proxyClient{
		t: t, base: base, origin: base,
		http:  &http.Client{Transport: transport(true), Timeout: 30 * time.Second, CheckRedirect: noRedirect},
		http1: &http.Client{Transport: transport(false)},
	}
}

func (c *proxyClient) do(method, path, token, ctype string, body io.Reader) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, c.base+path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, raw
}

func (c *proxyClient) jsonField(raw []byte, key string) string {
	var m map[string]any
	json.Unmarshal(raw, &m)
	s, _ := m[key].(string)
	return s
}

// waitReady waits until the proxy passes /healthz through.
func (c *proxyClient) waitReady(p *proxyProcess) {
	c.t.Helper()
	name := p.name
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.http.Get(c.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			c.t.Fatalf("%s ended: %v\n%s", name, p.err, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not pass /healthz through within 30 s: %v", name, err)
		}
	}
}

// checkThroughProxy: the page, register and login, a WebSocket message, and
// an upload bigger than nginx's default body limit, all through the proxy.
func (c *proxyClient) checkThroughProxy(user string) {
	t := c.t
	t.Helper()
	resp, page := c.do("GET", "/", "", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(page)), "<!doctype html") {
		t.Fatalf("the page: %d %.200s", resp.StatusCode, page)
	}

	form := url.Values{"username": {user}, "password": {testPassword}}.Encode()
	if resp, raw := c.do("POST", "/register/", "", "application/x-www-form-urlencoded", strings.NewReader(form)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	resp, raw := c.do("POST", "/login/", "", "application/x-www-form-urlencoded", strings.NewReader(form))
	token := c.jsonField(raw, "access_token")
	if resp.StatusCode != http.StatusOK || token == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, raw)
	}

	resp, raw = c.do("POST", "/ws-ticket/", token, "", nil)
	ticket := c.jsonField(raw, "ticket")
	if resp.StatusCode != http.StatusOK || ticket == "" {
		t.Fatalf("ws-ticket: %d %s", resp.StatusCode, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(c.base, "http") + "/ws?chat_name=global&ticket=" + url.QueryEscape(ticket)
	conn, wsResp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient: c.http1, HTTPHeader: http.Header{"Origin": {c.origin}},
	})
	if err != nil {
		status := 0
		if wsResp != nil {
			status = wsResp.StatusCode
		}
		t.Fatalf("WebSocket through the proxy (Origin %s): %v (status %d)", c.origin, err, status)
	}
	defer conn.CloseNow()
	text := "through the proxy, as " + user
	frame, _ := json.Marshal(map[string]string{"type": "text", "chat_name": "global", "text": text, "client_id": user + "-1"})
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
	var gotText, gotAck bool
	for !gotText || !gotAck {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("WebSocket read (text %v, ack %v): %v", gotText, gotAck, err)
		}
		var f map[string]any
		json.Unmarshal(data, &f)
		gotText = gotText || (f["type"] == "text" && f["text"] == text)
		gotAck = gotAck || (f["type"] == "ack" && f["client_id"] == user+"-1")
		if f["type"] == "error" {
			t.Fatalf("WebSocket error frame: %s", data)
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")

	// 3 MB: nginx refuses bodies over 1 MB unless told otherwise.
	content := bytes.Repeat([]byte("0123456789abcdef"), 3<<16)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("chat_id", "global")
	part, _ := mw.CreateFormFile("file", "notes.txt")
	part.Write(content)
	mw.Close()
	resp, raw = c.do("POST", "/upload/", token, mw.FormDataContentType(), &body)
	fileURL := c.jsonField(raw, "file_url")
	if resp.StatusCode != http.StatusCreated || fileURL == "" {
		t.Fatalf("upload of %d bytes: %d %.300s", len(content), resp.StatusCode, raw)
	}
	resp, got := c.do("GET", fileURL, token, "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("download: %d, %d bytes of %d", resp.StatusCode, len(got), len(content))
	}
}

// proxyServer starts the chat server as it runs behind a proxy: it knows
// the proxy's name only by ALLOWED_HOSTS (no PUBLIC_URL, so that a proxy
// dropping the port from Host fails the WebSocket's origin check, as it
// did in production), and believes the proxy's X-Forwarded-*.
func proxyServer(t *testing.T) (upstreamPort string) {
	srv := MustStart(t, baseEnv(t, map[string]string{"ALLOWED_HOSTS": proxyHost, "TRUSTED_PROXIES": "127.0.0.1"}))
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	return port
}

// TestReverseProxies runs deploy/nginx.conf.example in Debian's nginx and
// deploy/Caddyfile.example in Debian's caddy, each on loopback in front of
// a server of its own, and uses the chat through them.
func TestReverseProxies(t *testing.T) {
	t.Run("nginx", func(t *testing.T) {
		t.Parallel()
		nginx := needCommand(t, "nginx", "nginx-light")
		upstream := proxyServer(t)
		dir := t.TempDir()
		// nginx's workers drop root; let them into the folder.
		os.Chmod(dir, 0o755)
		os.Chmod(filepath.Dir(dir), 0o755)
		certFile, keyFile, pool := selfSigned(t, dir)
		httpsPort, httpPort := freePort(t), freePort(t)
		site := fromExample(t, "nginx.conf.example",
			"listen 443 ssl http2;", "listen 127.0.0.1:"+httpsPort+" ssl http2;",
			"listen [::]:443 ssl http2;", "",
			"listen 80;", "listen 127.0.0.1:"+httpPort+";",
			"listen [::]:80;", "",
			"server_name chat.example.com;", "server_name "+proxyHost+";",
			"/etc/letsencrypt/live/chat.example.com/fullchain.pem", certFile,
			"/etc/letsencrypt/live/chat.example.com/privkey.pem", keyFile,
			"proxy_pass http://127.0.0.1:8000;", "proxy_pass http://127.0.0.1:"+upstream+";",
			"/var/log/nginx/mapsim-chat.access.log", filepath.Join(dir, "site.log"),
		)
		os.WriteFile(filepath.Join(dir, "mapsim-chat.conf"), []byte(site), 0o644)
		// The http block of Debian's /etc/nginx/nginx.conf, reduced to what a
		// test needs, with every file nginx writes inside dir.
		main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 256; }
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
		// The check the issue named: the example fails nginx -t on 1.22.
		if out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
		proxy := startProxy(t, "nginx", exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf))

		c := newProxyClient(t, "https", httpsPort, pool)
		c.waitReady(proxy)
		resp, _ := c.do("GET", "/", "", "", nil)
		if resp.ProtoMajor != 2 {
			t.Errorf("nginx served the page over %s, want HTTP/2", resp.Proto)
		}
		c.checkThroughProxy("nina")
		// The site's log has the requests, and no query string: a
		// WebSocket's ticket is in its URL.
		if b, err := os.ReadFile(filepath.Join(dir, "site.log")); err != nil || !strings.Contains(string(b), "POST /ws-ticket/ ") {
			t.Fatalf("nginx's site log (%v) has no line for the ticket request:\n%s", err, b)
		} else if strings.Contains(string(b), "ticket=") || strings.Contains(string(b), "?") {
			t.Fatalf("nginx logged a query string:\n%s", b)
		}

		plain := newProxyClient(t, "http", httpPort, pool)
		if resp, _ := plain.do("GET", "/login?next=1", "", "", nil); resp.StatusCode != http.StatusMovedPermanently ||
			resp.Header.Get("Location") != "https://"+proxyHost+"/login?next=1" {
			t.Fatalf("plain HTTP: %d to %q, want a 301 to https", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("caddy", func(t *testing.T) {
		t.Parallel()
		caddy := needCommand(t, "caddy", "caddy")
		upstream := proxyServer(t)
		dir := t.TempDir()
		port := freePort(t)
		// Plain HTTP on loopback: no certificates, no admin endpoint.
		site := fromExample(t, "Caddyfile.example",
			"chat.example.com {", "http://"+proxyHost+":"+port+" {\n\tbind 127.0.0.1",
			"reverse_proxy 127.0.0.1:8000", "reverse_proxy 127.0.0.1:"+upstream,
		)
		conf := filepath.Join(dir, "Caddyfile")
		os.WriteFile(conf, []byte("{\n\tadmin off\n\tauto_https off\n}\n\n"+site), 0o644)
		cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
		proxy := startProxy(t, "caddy", cmd)

		c := newProxyClient(t, "http", port, nil)
		c.waitReady(proxy)
		c.checkThroughProxy("carl")
	})
}
