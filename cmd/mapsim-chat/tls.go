package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/acme/autocert"

	"github.com/mapsim/mapsim-chat/internal/config"
	"github.com/mapsim/mapsim-chat/internal/tlscert"
)

// serverTLS is where the server's certificate comes from: files read again
// on SIGHUP (TLS_CERT_FILE), or ACME (ACME_DOMAIN). nil serves plain HTTP.
type serverTLS struct {
	config *tls.Config
	files  *tlscert.Files
	acme   *autocert.Manager
}

// newServerTLS reads the certificate files, or sets up the ACME cache; a
// pair that does not load stops the start before anything listens.
func newServerTLS(cfg config.Config) (*serverTLS, error) {
	switch {
	case cfg.TLSCert != "":
		files, err := tlscert.LoadFiles(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		return &serverTLS{
			config: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: files.GetCertificate},
			files:  files,
		}, nil
	case cfg.ACMEDomain != "":
		m, err := tlscert.ACME(cfg.ACMEDomain, cfg.ACMEEmail, cfg.ACMECacheDir())
		if err != nil {
			return nil, fmt.Errorf("ACME_DOMAIN %s: %w", cfg.ACMEDomain, err)
		}
		// The manager's config adds acme-tls/1 to the protocols, which
		// answers TLS-ALPN-01 challenges on this listener.
		c := m.TLSConfig()
		c.MinVersion = tls.VersionTLS12
		return &serverTLS{config: c, acme: m}, nil
	}
	return nil, nil
}

// reload is SIGHUP's work: read the certificate files again. A pair that
// does not load is logged and the one being served stays; connections
// already open are not touched either way.
func (t *serverTLS) reload(log *slog.Logger) {
	switch {
	case t == nil:
		log.Info("SIGHUP: no TLS certificate to reload (plain HTTP)")
	case t.acme != nil:
		log.Info("SIGHUP: ACME certificates renew by themselves; nothing to reload")
	default:
		old := t.files.Leaf()
		leaf, err := t.files.Reload()
		if err != nil {
			log.Error("SIGHUP: the new TLS certificate cannot be used; still serving the previous one",
				"err", err, "serial", old.SerialNumber.Text(16), "not_after", old.NotAfter)
			return
		}
		log.Info("SIGHUP: reloaded the TLS certificate", certAttrs(leaf)...)
	}
}

// certAttrs are the facts of a certificate worth a log line.
func certAttrs(leaf *x509.Certificate) []any {
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return []any{"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "names", strings.Join(names, ",")}
}

// acmeRedirectBase is where the plain-HTTP listener sends browsers:
// PUBLIC_URL when it is https, else the ACME domain on the TLS listener's
// port.
func acmeRedirectBase(cfg config.Config, tlsPort int) string {
	if strings.HasPrefix(cfg.PublicURL, "https://") {
		return cfg.PublicURL
	}
	if tlsPort == 443 {
		return "https://" + cfg.ACMEDomain
	}
	return "https://" + net.JoinHostPort(cfg.ACMEDomain, strconv.Itoa(tlsPort))
}
