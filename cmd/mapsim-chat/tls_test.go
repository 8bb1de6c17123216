package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/tlscert"
)

// genCert runs "mapsim-chat gen-cert -out dir args…" through run() and
// returns what it printed.
func genCert(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"mapsim-chat", "gen-cert", "-out", dir}, args...),
		func(string) string { return "" }, strings.NewReader(""), &out, io.Discard, nil)
	return out.String(), err
}

// mustGenCert is genCert that must succeed; it returns the certificate written.
func mustGenCert(t testing.TB, dir string, args ...string) *x509.Certificate {
	t.Helper()
	if out, err := genCert(t, dir, args...); err != nil {
		t.Fatalf("gen-cert %v: %v\n%s", args, err, out)
	}
	return readCert(t, filepath.Join(dir, tlscert.CertFileName))
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate:\n%s", path, data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

// servedCert makes a new TLS handshake with addr, trusting only pool, and
// returns the certificate the server presented.
func servedCert(t testing.TB, addr, serverName string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: serverName})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func tlsEnv(t testing.TB, dir string) map[string]string {
	return baseEnv(t, map[string]string{
		"TLS_CERT_FILE": filepath.Join(dir, tlscert.CertFileName),
		"TLS_KEY_FILE":  filepath.Join(dir, tlscert.KeyFileName),
	})
}

func mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestGenCert: gen-cert writes a self-signed ECDSA P-256 certificate for
// the names and addresses asked for (or localhost, 127.0.0.1 and the host
// name), its key readable by the owner only, prints the settings that use
// them, and refuses to overwrite a pair without -force.
func TestGenCert(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "tls")
		out, err := genCert(t, dir)
		if err != nil {
			t.Fatalf("gen-cert: %v\n%s", err, out)
		}
		certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if m := mode(t, keyPath); m != 0o600 {
			t.Errorf("key mode %o, want 600", m)
		}
		if m := mode(t, certPath); m != 0o644 {
			t.Errorf("certificate mode %o, want 644", m)
		}
		if m := mode(t, dir); m != 0o700 {
			t.Errorf("folder mode %o, want 700", m)
		}
		for _, line := range []string{"TLS_CERT_FILE=" + certPath + "\n", "TLS_KEY_FILE=" + keyPath + "\n"} {
			if !strings.Contains(out, line) {
				t.Errorf("the output lacks %q:\n%s", line, out)
			}
		}
		cert := readCert(t, certPath)
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
		}
		wantNames := []string{"localhost"}
		if h, err := os.Hostname(); err == nil && h != "localhost" && tlscert.CheckHostName(h) == nil {
			wantNames = append(wantNames, strings.ToLower(h))
		}
		if !slices.Equal(cert.DNSNames, wantNames) {
			t.Errorf("DNS names %v, want %v", cert.DNSNames, wantNames)
		}
		if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("IP addresses %v, want 127.0.0.1", cert.IPAddresses)
		}
		if cert.IsCA || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			t.Errorf("IsCA %v, ExtKeyUsage %v: want a server certificate", cert.IsCA, cert.ExtKeyUsage)
		}
		if days := time.Until(cert.NotAfter).Hours() / 24; days < 364 || days > 366 {
			t.Errorf("valid for %.1f more days, want 365", days)
		}
		if !strings.Contains(out, tlscert.Fingerprint(cert)) {
			t.Errorf("the output lacks the fingerprint:\n%s", out)
		}
		// The pair matches, and a client that trusts the certificate
		// accepts it for every name it was made for.
		if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			t.Fatalf("the key does not go with the certificate: %v", err)
		}
		for _, name := range append(wantNames, "127.0.0.1") {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: certPool(cert), DNSName: name}); err != nil {
				t.Errorf("not valid for %s: %v", name, err)
			}
		}
	})

	t.Run("hosts, days, no overwrite, force", func(t *testing.T) {
		dir := t.TempDir()
		cert := mustGenCert(t, dir, "-host", "chat.lan", "-host", "192.168.1.10,::1", "-days", "30")
		if !slices.Equal(cert.DNSNames, []string{"chat.lan"}) || len(cert.IPAddresses) != 2 ||
			!cert.IPAddresses[0].Equal(net.ParseIP("192.168.1.10")) || !cert.IPAddresses[1].Equal(net.IPv6loopback) {
			t.Fatalf("names %v, addresses %v", cert.DNSNames, cert.IPAddresses)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: certPool(cert), DNSName: "localhost"}); err == nil {
			t.Errorf("valid for localhost, which was not asked for")
		}
		if days := time.Until(cert.NotAfter).Hours() / 24; days < 29 || days > 31 {
			t.Errorf("valid for %.1f more days, want 30", days)
		}
		before := map[string][]byte{}
		for _, f := range []string{"cert.pem", "key.pem"} {
			before[f], _ = os.ReadFile(filepath.Join(dir, f))
		}
		out, err := genCert(t, dir, "-host", "other.lan")
		if err == nil || !strings.Contains(err.Error(), "exists") || !strings.Contains(err.Error(), "-force") {
			t.Fatalf("a second gen-cert without -force: err %v\n%s", err, out)
		}
		for f, data := range before {
			if now, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(now, data) {
				t.Errorf("%s changed although gen-cert refused", f)
			}
		}
		// Only the key there is enough to refuse.
		keyOnly := t.TempDir()
		os.WriteFile(filepath.Join(keyOnly, "key.pem"), []byte("precious"), 0o600)
		if _, err := genCert(t, keyOnly); err == nil {
			t.Errorf("gen-cert replaced a key without -force")
		}

		replaced := mustGenCert(t, dir, "-force", "-host", "other.lan")
		if replaced.SerialNumber.Cmp(cert.SerialNumber) == 0 || !slices.Equal(replaced.DNSNames, []string{"other.lan"}) {
			t.Fatalf("-force did not write a new certificate: serial %x names %v", replaced.SerialNumber, replaced.DNSNames)
		}
		if m := mode(t, filepath.Join(dir, "key.pem")); m != 0o600 {
			t.Errorf("replaced key mode %o, want 600", m)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
			t.Fatalf("the replaced pair does not match: %v", err)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
			t.Errorf("temporary files left: %v", leftovers)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		for _, args := range [][]string{
			{"-host", "not a name"},
			{"-host", "bad_name.lan"},
			{"-days", "0"},
			{"-days", "5000"},
			{"stray"},
		} {
			dir := t.TempDir()
			if out, err := genCert(t, dir, args...); err == nil {
				t.Errorf("gen-cert %v succeeded:\n%s", args, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "key.pem")); err == nil {
				t.Errorf("gen-cert %v failed but wrote a key", args)
			}
		}
	})
}

// TestTLSReloadKeepsConnections: the server serves a certificate from
// gen-cert; a new pair written over the files and a reload (SIGHUP) leave
// 200 open WebSockets working, each answering a ping and receiving a
// message, while a new handshake gets the new certificate.
func TestTLSReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	first := mustGenCert(t, dir, "-host", "127.0.0.1,localhost")
	s := MustStart(t, tlsEnv(t, dir))
	addr, ok := strings.CutPrefix(s.URL, "https://")
	if !ok {
		t.Fatalf("the server announced %s, not https", s.URL)
	}
	if r := s.call(t, "GET", "/healthz", "", nil); r.Status != http.StatusOK || r.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("healthz over TLS: %d, Strict-Transport-Security %q", r.Status, r.Header.Get("Strict-Transport-Security"))
	}
	if got := servedCert(t, addr, "127.0.0.1", certPool(first)); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("served serial %x, want %x", got.SerialNumber, first.SerialNumber)
	}

	// 200 sockets: 10 users, 20 each (MAX_CONNECTIONS_PER_USER's default).
	tokens := s.mustUsers(t, "tls", 10)
	conns := make([]*wsClient, 200)
	for i := range conns {
		conns[i] = s.MustDial(t, tokens[i%len(tokens)], "global")
	}
	for _, c := range conns {
		c.nextType("hello")
	}

	second := mustGenCert(t, dir, "-force", "-host", "127.0.0.1,localhost")
	s.hangup <- syscall.SIGHUP
	s.waitLog(t, "serial="+second.SerialNumber.Text(16), 1)
	if got := servedCert(t, addr, "127.0.0.1", certPool(second)); got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after the reload a new handshake got serial %x, want the new %x", got.SerialNumber, second.SerialNumber)
	}
	s.client = tlsClient(certPool(first, second))

	for _, c := range conns {
		c.send(map[string]any{"type": "ping"})
	}
	for i, c := range conns {
		if f := c.nextType("pong"); f == nil {
			t.Fatalf("socket %d: no pong", i)
		}
	}
	conns[0].send(map[string]any{"type": "text", "chat_name": "global", "text": "after the reload", "client_id": "reload-1"})
	for _, c := range conns {
		c.next(func(f map[string]any) bool { return f["type"] == "text" && f["text"] == "after the reload" })
	}
	for i, c := range conns {
		select {
		case err := <-c.closed:
			t.Fatalf("socket %d closed: %v", i, err)
		default:
		}
	}
	// A socket opened now shakes hands with the new certificate and works.
	late := s.MustDial(t, s.MustUser(t, "late"), "global")
	late.nextType("hello")
}

// TestTLSReloadKeepsLastGoodCertificate: a reload that finds a broken
// certificate, a key that does not match it, or a missing file logs why
// and keeps serving the certificate it had; a good pair afterwards is
// taken.
func TestTLSReloadKeepsLastGoodCertificate(t *testing.T) {
	dir := t.TempDir()
	first := mustGenCert(t, dir, "-host", "127.0.0.1")
	other := mustGenCert(t, t.TempDir(), "-host", "127.0.0.1")
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
	s := MustStart(t, tlsEnv(t, dir))
	addr := strings.TrimPrefix(s.URL, "https://")
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")

	breakages := []struct {
		name   string
		breaks func() error
		says   string
	}{
		{"not a certificate", func() error { return os.WriteFile(certPath, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644) }, "certificate"},
		{"a certificate of another key", func() error { return os.WriteFile(certPath, otherPEM, 0o644) }, "private key does not match public key"},
		{"no key", func() error { return os.Remove(keyPath) }, "no such file"},
	}
	for i, b := range breakages {
		if err := b.breaks(); err != nil {
			t.Fatal(err)
		}
		s.hangup <- syscall.SIGHUP
		s.waitLog(t, "still serving the previous one", i+1)
		line := lastLine(s.logs.String(), "still serving the previous one")
		if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, b.says) || !strings.Contains(line, first.SerialNumber.Text(16)) {
			t.Errorf("%s: the log line does not say what failed and what is kept:\n%s", b.name, line)
		}
		if got := servedCert(t, addr, "127.0.0.1", certPool(first)); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatalf("%s: a new handshake got serial %x, want the previous %x", b.name, got.SerialNumber, first.SerialNumber)
		}
		if r := s.call(t, "GET", "/healthz", "", nil); r.Status != http.StatusOK {
			t.Fatalf("%s: healthz %d", b.name, r.Status)
		}
	}

	good := mustGenCert(t, dir, "-force", "-host", "127.0.0.1")
	s.hangup <- syscall.SIGHUP
	s.waitLog(t, "serial="+good.SerialNumber.Text(16), 1)
	if got := servedCert(t, addr, "127.0.0.1", certPool(good)); got.SerialNumber.Cmp(good.SerialNumber) != 0 {
		t.Fatalf("a good pair after broken ones was not taken: serial %x", got.SerialNumber)
	}
}

// lastLine is the last line of logs that contains substr.
func lastLine(logs, substr string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}

// TestSIGHUPKeepsServerRunning: a real SIGHUP to the real command (the
// test binary running main) reloads its certificate and leaves it running
// and serving; SIGTERM then stops it cleanly. Under systemd a death by
// SIGHUP counts as a clean exit, so Restart=on-failure would leave the
// server down after a certificate-renewal hook.
func TestSIGHUPKeepsServerRunning(t *testing.T) {
	dir := t.TempDir()
	first := mustGenCert(t, dir, "-host", "127.0.0.1")
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = []string{
		"MAPSIM_CHAT_AS_MAIN=1", "LISTEN_ADDR=127.0.0.1:0", "LOG_FORMAT=json",
		"DATA_DIR=" + t.TempDir(), "UPLOAD_DIR=" + t.TempDir(), "SECRET_KEY=TWFwc2ltQ2hhdFRlc3RTZWNyZXRLZXkwMTIzNDU2Nzg5",
		"TLS_CERT_FILE=" + filepath.Join(dir, "cert.pem"), "TLS_KEY_FILE=" + filepath.Join(dir, "key.pem"),
	}
	cmd.Dir = t.TempDir() // no .env there
	stdout, stderr := &syncBuffer{listening: make(chan string, 1)}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited closes when the process has ended; waitErr says how.
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // fails harmlessly once it has exited
		<-exited
	})
	var url string
	select {
	case url = <-stdout.listening:
	case <-exited:
		t.Fatalf("the server exited at start: %v\n%s", waitErr, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the server did not listen within 60 s\n%s", stderr.String())
	}
	addr := strings.TrimPrefix(url, "https://")
	if got := servedCert(t, addr, "127.0.0.1", certPool(first)); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("served serial %x, want %x", got.SerialNumber, first.SerialNumber)
	}

	second := mustGenCert(t, dir, "-force", "-host", "127.0.0.1")
	for n := 1; n <= 2; n++ {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(15 * time.Second)
		for strings.Count(stderr.String(), `"msg":"SIGHUP: reloaded the TLS certificate"`) < n {
			select {
			case <-exited:
				t.Fatalf("SIGHUP %d ended the server: %v\n%s", n, waitErr, stderr.String())
			case <-deadline:
				t.Fatalf("no reload logged within 15 s of SIGHUP %d:\n%s", n, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if got := servedCert(t, addr, "127.0.0.1", certPool(second)); got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP a new handshake got serial %x, want %x", got.SerialNumber, second.SerialNumber)
	}
	resp, err := tlsClient(certPool(second)).Get(url + "/healthz")
	if err != nil {
		t.Fatalf("healthz after SIGHUP: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after SIGHUP: %s", resp.Status)
	}
	select {
	case <-exited:
		t.Fatalf("the server exited: %v\n%s", waitErr, stderr.String())
	default:
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("SIGTERM: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not stop within 30 s of SIGTERM")
	}
}

// TestListeningAnnouncement: at start the server says on stdout where it
// listens and whether anyone may register (a JSON line in JSON mode), and
// its log line (JSON here) carries the same facts; plain HTTP beyond
// loopback is warned about.
func TestListeningAnnouncement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		env            map[string]string
		registration   string
		sentence       string
		everyInterface bool
	}{
		{"loopback, open", map[string]string{}, "open", "registration open to anyone", false},
		{"every interface, invite", map[string]string{"LISTEN_ADDR": "0.0.0.0:0", "REGISTRATION": "invite"}, "invite", "registration by invite", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, tt.env)
			env["LOG_FORMAT"] = "json"
			s := MustStart(t, env)
			port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
			// In JSON mode the banner is a JSON line too.
			var banner map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(s.stdout.String())), &banner); err != nil {
				t.Errorf("stdout is not one JSON line: %q", s.stdout.String())
			} else if want := "Mapsim Chat listening on http://127.0.0.1:" + port + " (" + tt.sentence + ")"; banner["msg"] != want || banner["registration"] != tt.registration {
				t.Errorf("stdout %q, want msg %q and registration %q", s.stdout.String(), want, tt.registration)
			}
			// The warning follows the listening line, which is what
			// MustStart waits for; only a stopped server has said all.
			s.Stop(t)
			var listening, warning map[string]any
			for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("a log line that is not JSON: %q", line)
				}
				switch {
				case rec["msg"] == "listening":
					listening = rec
				case rec["level"] == "WARN" && strings.Contains(fmt.Sprint(rec["msg"]), "plain HTTP"):
					warning = rec
				}
			}
			addr, _ := listening["addr"].(string)
			host, addrPort, _ := net.SplitHostPort(addr)
			ip := net.ParseIP(host)
			if listening == nil || listening["url"] != s.URL || addrPort != port || ip == nil || ip.IsUnspecified() != tt.everyInterface ||
				listening["tls"] != false || listening["registration"] != tt.registration || listening["every_interface"] != tt.everyInterface {
				t.Errorf("the listening log line %v, want url %s, port %s, tls false, registration %s, every_interface %v",
					listening, s.URL, port, tt.registration, tt.everyInterface)
			}
			if (warning != nil) != tt.everyInterface {
				t.Errorf("plain-HTTP warning %v; want one only beyond loopback", warning)
			}
		})
	}
}

// TestACMEWiring: with ACME_DOMAIN the server takes its certificate from
// the ACME manager, whose cache (DATA_DIR/acme, mode 0700) already holds
// one here, so no certificate authority is asked: it serves the domain
// only, with HSTS; answers TLS-ALPN-01 on the TLS listener; and on
// ACME_HTTP_ADDR answers HTTP-01 challenges for the domain only and
// redirects everything else to https on the domain. (A real issuance needs
// the domain to reach ports 80 and 443 from the internet.)
func TestACMEWiring(t *testing.T) {
	const domain = "chat.example.test"
	env := baseEnv(t, map[string]string{"ACME_DOMAIN": domain, "ACME_HTTP_ADDR": "127.0.0.1:0", "ACME_EMAIL": "ops@example.test"})
	cache := filepath.Join(env["DATA_DIR"], "acme")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	// autocert's cache entries: the key, then the chain; a token
	// certificate for TLS-ALPN-01 under "+token", an HTTP-01 answer under
	// "<token>+http-01".
	cachePair := func(name string) *x509.Certificate {
		certPEM, keyPEM, err := tlscert.SelfSigned{Hosts: []string{domain}, Days: 90, Now: time.Now()}.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, name), append(keyPEM, certPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		cert, _ := x509.ParseCertificate(block.Bytes)
		return cert
	}
	cert, tokenCert := cachePair(domain), cachePair(domain+"+token")
	if err := os.WriteFile(filepath.Join(cache, "tok123+http-01"), []byte("tok123.thumbprint"), 0o600); err != nil {
		t.Fatal(err)
	}

	s := MustStart(t, env)
	if m := mode(t, cache); m != 0o700 {
		t.Errorf("ACME cache mode %o, want 700", m)
	}
	tlsAddr, ok := strings.CutPrefix(s.URL, "https://")
	if !ok {
		t.Fatalf("the server announced %s, not https", s.URL)
	}
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	m := regexp.MustCompile(`redirects to https on http://(\S+)`).FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("no ACME HTTP listener announced:\n%s", s.stdout.String())
	}
	httpAddr := m[1]

	// The domain, reached at the TLS listener: its certificate, HSTS, and
	// the host is one the server answers to.
	toListener := func(addr string) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: toListener(tlsAddr), TLSClientConfig: &tls.Config{RootCAs: certPool(cert)}}}
	resp, err := client.Get("https://" + domain + ":" + tlsPort + "/")
	if err != nil {
		t.Fatalf("GET / on %s: %v", domain, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("GET / on %s: %s, Strict-Transport-Security %q", domain, resp.Status, resp.Header.Get("Strict-Transport-Security"))
	}
	if got := resp.TLS.PeerCertificates[0]; got.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("served serial %x, want the cached %x", got.SerialNumber, cert.SerialNumber)
	}

	// Any other name gets no certificate (and no certificate authority is
	// asked for one).
	for _, name := range []string{"other.example.test", "example.test"} {
		conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Errorf("a handshake for %s succeeded", name)
		}
	}
	s.waitLog(t, `not configured in HostWhitelist`, 1)

	// TLS-ALPN-01: a handshake offering only acme-tls/1 gets the token
	// certificate.
	conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: domain, NextProtos: []string{"acme-tls/1"}, RootCAs: certPool(tokenCert)})
	if err != nil {
		t.Fatalf("TLS-ALPN-01 handshake: %v", err)
	}
	state := conn.ConnectionState()
	conn.Close()
	if state.NegotiatedProtocol != "acme-tls/1" || state.PeerCertificates[0].SerialNumber.Cmp(tokenCert.SerialNumber) != 0 {
		t.Fatalf("TLS-ALPN-01: protocol %q, serial %x", state.NegotiatedProtocol, state.PeerCertificates[0].SerialNumber)
	}

	// HTTP-01 and the redirect.
	plain := &http.Client{
		Transport:     &http.Transport{DialContext: toListener(httpAddr)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(method, host, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s http://%s%s: %v", method, host, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, body := get("GET", domain, "/.well-known/acme-challenge/tok123"); resp.StatusCode != http.StatusOK || body != "tok123.thumbprint" {
		t.Errorf("HTTP-01 challenge: %s %q", resp.Status, body)
	}
	if resp, _ := get("GET", "other.example.test", "/.well-known/acme-challenge/tok123"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP-01 challenge for another host: %s, want 403", resp.Status)
	}
	for _, method := range []string{"GET", "POST"} {
		resp, _ := get(method, "evil.example.test", "/chats/?x=1")
		want := "https://" + domain + ":" + tlsPort + "/chats/?x=1"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s on plain HTTP: %s to %q, want 308 to %q", method, resp.Status, resp.Header.Get("Location"), want)
		}
	}
}

// TestACMEStartRefusals: ACME settings that cannot work stop the start
// before anything listens, naming the setting.
func TestACMEStartRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustGenCert(t, dir, "-host", "127.0.0.1")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // the subtests run after this function returns
	for name, env := range map[string]map[string]string{
		"ACME_DOMAIN and TLS_CERT_FILE": {"ACME_DOMAIN": "chat.example.test",
			"TLS_CERT_FILE": filepath.Join(dir, "cert.pem"), "TLS_KEY_FILE": filepath.Join(dir, "key.pem")},
		"ACME_HTTP_ADDR in use": {"ACME_DOMAIN": "chat.example.test", "ACME_HTTP_ADDR": busy.Addr().String()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := start(t, baseEnv(t, env))
			variable, _, _ := strings.Cut(name, " ")
			if err == nil || !strings.Contains(err.Error(), variable) {
				t.Fatalf("err = %v, want one naming %s", err, variable)
			}
		})
	}
}
