// Package tlscert provides the server's TLS certificates: a self-signed
// pair for a LAN (the gen-cert command), a certificate and key read from
// files and read again on demand while the last good pair keeps being
// served, and certificates from an ACME certificate authority.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// File names gen-cert writes in its folder.
const (
	CertFileName = "cert.pem"
	KeyFileName  = "key.pem"
)

// SelfSigned describes a self-signed certificate to make.
type SelfSigned struct {
	// Hosts are the DNS names and IP addresses the certificate is for; the
	// first is also its common name.
	Hosts []string
	// Days is how long it is valid, from an hour before Now (so that a
	// client whose clock is a little behind accepts it at once).
	Days int
	Now  time.Time
}

// Generate makes a self-signed ECDSA P-256 certificate and its key, both
// PEM-encoded. Names and addresses go into the subject alternative names,
// which is what clients check.
func (s SelfSigned) Generate() (certPEM, keyPEM []byte, err error) {
	if len(s.Hosts) == 0 {
		return nil, nil, errors.New("no host names or addresses to make the certificate for")
	}
	if s.Days < 1 {
		return nil, nil, fmt.Errorf("a certificate valid for %d days", s.Days)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: s.Hosts[0], Organization: []string{"Mapsim Chat (self-signed)"}},
		NotBefore:             s.Now.Add(-time.Hour),
		NotAfter:              s.Now.AddDate(0, 0, s.Days),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range s.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if err := CheckHostName(h); err != nil {
			return nil, nil, err
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	// 128 random bits: serials must be unique per issuer, and with a fresh
	// key each time this one issuer is every certificate.
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// CheckHostName accepts a DNS name as a certificate may carry it: labels of
// letters, digits and hyphens, optionally a leading "*." wildcard.
func CheckHostName(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is neither an IP address nor a host name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is neither an IP address nor a host name", h)
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
				return fmt.Errorf("%q is neither an IP address nor a host name", h)
			}
		}
	}
	return nil
}

// WritePair writes a certificate and its key into dir (made with mode 0700
// if missing) as CertFileName and KeyFileName; the key gets mode 0600, the
// certificate 0644. Unless overwrite is set it refuses to replace either
// file. Each file is written beside its place and renamed into it, so a
// server reading them on reload sees the old file or the new one, never
// half of one. It returns the two paths.
func WritePair(dir string, certPEM, keyPEM []byte, overwrite bool) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("%s exists; -force replaces it", p)
			} else if !errors.Is(err, os.ErrNotExist) {
				return "", "", err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	// The key first: a server reloading between the two renames finds a
	// certificate that does not match its key, refuses the pair and keeps
	// serving the old one; the next reload takes both.
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	// CreateTemp makes the file 0600: the key is never readable by others,
	// not even for a moment.
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Fingerprint is the SHA-256 of a certificate's DER bytes in the colon-
// separated hex browsers show, for checking a self-signed certificate by
// eye on the first visit.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	out := make([]string, len(sum))
	for i, b := range sum {
		out[i] = strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	return strings.Join(out, ":")
}

// Files serves a certificate and key read from two PEM files. Reload reads
// them again; a pair that cannot be used is refused and the previous one
// kept, so a renewal hook that wrote a bad file leaves the server as it was
// instead of without a certificate.
type Files struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// LoadFiles reads the pair once; an error here stops the start.
func LoadFiles(certFile, keyFile string) (*Files, error) {
	f := &Files{certFile: certFile, keyFile: keyFile}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the pair again and serves it from the next handshake on;
// connections already open keep the certificate they shook hands with. On
// an error the previous pair stays. It returns the new leaf certificate.
func (f *Files) Reload() (*x509.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE %s and TLS_KEY_FILE %s: %w", f.certFile, f.keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS_CERT_FILE %s: %w", f.certFile, err)
		}
	}
	f.current.Store(&cert)
	return cert.Leaf, nil
}

// Leaf is the certificate being served.
func (f *Files) Leaf() *x509.Certificate { return f.current.Load().Leaf }

// GetCertificate is the tls.Config hook: the last pair that loaded.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.current.Load(), nil
}
