package tlscert

import (
	"fmt"
	"net/http"
	"os"

	"golang.org/x/crypto/acme/autocert"
)

// ACME returns a manager that gets a certificate for domain, and only for
// domain, from Let's Encrypt on the first handshake that asks for it, and
// renews it 30 days before it expires. It answers TLS-ALPN-01 challenges
// through its TLS config and HTTP-01 challenges through its HTTPHandler;
// either needs the domain to reach this server from the internet on 443 or
// 80. Certificates and the account key are kept in cacheDir, made (or
// narrowed) to mode 0700, each file 0600: the keys in it are the server's
// identity. An empty email registers the account without one (Let's
// Encrypt then cannot warn of expiry or revocation).
func ACME(domain, email, cacheDir string) (*autocert.Manager, error) {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache %s: %w", cacheDir, err)
	}
	// MkdirAll leaves an existing folder's mode as it was.
	if err := os.Chmod(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache %s: %w", cacheDir, err)
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cacheDir),
		HostPolicy: autocert.HostWhitelist(domain),
		Email:      email,
	}, nil
}

// Redirect answers every request with a permanent redirect (308, which
// keeps the method) to the same path and query under base, an origin such
// as https://chat.example.com. base is the configured one, never the
// request's Host, so the plain-HTTP listener sends nobody elsewhere.
func Redirect(base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
