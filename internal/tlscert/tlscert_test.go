package tlscert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/tlscert"
)

// MustPair writes a fresh self-signed pair for hosts into dir.
func MustPair(tb testing.TB, dir string, overwrite bool, hosts ...string) {
	tb.Helper()
	certPEM, keyPEM, err := tlscert.SelfSigned{Hosts: hosts, Days: 10, Now: time.Now()}.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := tlscert.WritePair(dir, certPEM, keyPEM, overwrite); err != nil {
		tb.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	certPEM, keyPEM, err := tlscert.SelfSigned{Hosts: []string{"Chat.LAN", "10.0.0.7", "*.chat.lan"}, Days: 7, Now: now}.Generate()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("the key does not go with the certificate: %v", err)
	}
	leaf := pair.Leaf
	if k, ok := pair.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", pair.PrivateKey)
	}
	if strings.Join(leaf.DNSNames, " ") != "chat.lan *.chat.lan" || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.7" {
		t.Errorf("names %v, addresses %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "Chat.LAN" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.AddDate(0, 0, 7)) {
		t.Errorf("valid %s to %s", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %x is not random enough", leaf.SerialNumber)
	}
	for _, bad := range []tlscert.SelfSigned{
		{Hosts: nil, Days: 1, Now: now},
		{Hosts: []string{"ok.lan"}, Days: 0, Now: now},
		{Hosts: []string{"-bad.lan"}, Days: 1, Now: now},
		{Hosts: []string{"a..b"}, Days: 1, Now: now},
		{Hosts: []string{"http://x.lan"}, Days: 1, Now: now},
	} {
		if _, _, err := bad.Generate(); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}

// TestFilesReloadKeepsLastGood: Reload takes a good new pair, and keeps
// serving the previous one when the files cannot be used.
func TestFilesReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	MustPair(t, dir, false, "a.lan")
	certPath, keyPath := filepath.Join(dir, tlscert.CertFileName), filepath.Join(dir, tlscert.KeyFileName)
	files, err := tlscert.LoadFiles(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		c, err := files.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.DNSNames[0]
	}
	if served() != "a.lan" || files.Leaf().DNSNames[0] != "a.lan" {
		t.Fatalf("serving %s", served())
	}

	MustPair(t, dir, true, "b.lan")
	if leaf, err := files.Reload(); err != nil || leaf.DNSNames[0] != "b.lan" || served() != "b.lan" {
		t.Fatalf("reload of a good pair: %v; serving %s", err, served())
	}

	otherDir := t.TempDir()
	MustPair(t, otherDir, false, "c.lan")
	otherCert, _ := os.ReadFile(filepath.Join(otherDir, tlscert.CertFileName))
	for _, breakage := range []struct {
		name  string
		apply func() error
	}{
		{"garbage", func() error { return os.WriteFile(certPath, []byte("garbage"), 0o644) }},
		{"another key's certificate", func() error { return os.WriteFile(certPath, otherCert, 0o644) }},
		{"no key", func() error { return os.Remove(keyPath) }},
	} {
		if err := breakage.apply(); err != nil {
			t.Fatal(err)
		}
		_, err := files.Reload()
		if err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE") {
			t.Errorf("%s: reload error %v, want one naming TLS_CERT_FILE", breakage.name, err)
		}
		if served() != "b.lan" {
			t.Errorf("%s: serving %s, want the previous b.lan", breakage.name, served())
		}
	}

	if _, err := tlscert.LoadFiles(certPath, keyPath); err == nil {
		t.Errorf("LoadFiles accepted a missing key")
	}
}

// TestACME: the manager issues for its domain only, keeps its cache in a
// folder of mode 0700 (narrowing one that exists), and the redirect goes
// to the configured origin whatever the request's Host.
func TestACME(t *testing.T) {
	t.Parallel()
	cache := filepath.Join(t.TempDir(), "acme")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := tlscert.ACME("chat.example.com", "ops@example.com", cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache folder: %v, mode %v", err, fi.Mode())
	}
	if m.Email != "ops@example.com" || m.Cache == nil {
		t.Errorf("email %q, cache %v", m.Email, m.Cache)
	}
	ctx := context.Background()
	if err := m.HostPolicy(ctx, "chat.example.com"); err != nil {
		t.Errorf("the domain is refused: %v", err)
	}
	for _, host := range []string{"example.com", "www.chat.example.com", "evil.example", "127.0.0.1", ""} {
		if err := m.HostPolicy(ctx, host); err == nil {
			t.Errorf("%q is accepted", host)
		}
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "http://evil.example/a/b?c=d", nil)
	tlscert.Redirect("https://chat.example.com:8443").ServeHTTP(rec, req)
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != "https://chat.example.com:8443/a/b?c=d" {
		t.Errorf("redirect: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}
