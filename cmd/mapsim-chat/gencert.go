package main

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/tlscert"
)

// hostList is a flag given once per host, or once with a comma-separated
// list.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*h = append(*h, part)
		}
	}
	return nil
}

// runGenCert writes a self-signed certificate and its key for serving TLS
// on a LAN without a certificate authority, and prints the settings that
// use them.
func runGenCert(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen-cert", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var hosts hostList
	fs.Var(&hosts, "host", "a DNS name or IP address the certificate is for; repeat it, or separate with commas\n(default: localhost, 127.0.0.1 and this machine's host name)")
	out := fs.String("out", "tls", "the folder to write "+tlscert.CertFileName+" and "+tlscert.KeyFileName+" into (made with mode 0700)")
	days := fs.Int("days", 365, "how many days the certificate is valid (1 to 3650)")
	force := fs.Bool("force", false, "replace a certificate and key already in the folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gen-cert: unexpected %q; hosts go after -host", fs.Arg(0))
	}
	if *days < 1 || *days > 3650 {
		return fmt.Errorf("gen-cert: -days %d is not from 1 to 3650", *days)
	}
	if len(hosts) == 0 {
		hosts = hostList{"localhost", "127.0.0.1"}
		if name, err := os.Hostname(); err == nil && name != "" && name != "localhost" && tlscert.CheckHostName(name) == nil {
			hosts = append(hosts, name)
		}
	}
	certPEM, keyPEM, err := tlscert.SelfSigned{Hosts: hosts, Days: *days, Now: time.Now()}.Generate()
	if err != nil {
		return fmt.Errorf("gen-cert: %w", err)
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("gen-cert: %w", err)
	}
	certPath, keyPath, err := tlscert.WritePair(dir, certPEM, keyPEM, *force)
	if err != nil {
		return fmt.Errorf("gen-cert: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("gen-cert: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (self-signed for %s, valid until %s)\n", certPath, strings.Join(hosts, ", "), cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(stdout, "wrote %s (the private key, mode 0600)\n", keyPath)
	fmt.Fprintf(stdout, "SHA-256 fingerprint: %s\n", tlscert.Fingerprint(cert))
	fmt.Fprintf(stdout, "\nAdd to .env (or /etc/mapsim-chat/env), then restart the server, or send it SIGHUP if it already serves TLS:\n")
	fmt.Fprintf(stdout, "TLS_CERT_FILE=%s\nTLS_KEY_FILE=%s\n", certPath, keyPath)
	return nil
}
