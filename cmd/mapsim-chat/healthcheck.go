package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/config"
)

// runHealthcheck asks a running server for GET /healthz and fails unless it
// answers 200: a container's HEALTHCHECK, which has no curl in an image
// built FROM scratch. Without -url it asks the server this configuration
// describes (LISTEN_ADDR, https when the server terminates TLS) on
// loopback.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	base := fs.String("url", "", "the server's address, such as http://127.0.0.1:8000 (default: from LISTEN_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	target := strings.TrimRight(*base, "/")
	if target == "" {
		cfg, err := config.Load(getenv)
		if err != nil {
			return fmt.Errorf("healthcheck: configuration:\n%w", err)
		}
		target = localURL(cfg)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck: -url %q is not http://host:port or https://host:port", target)
	}
	// The check reaches the server over loopback by address, so a
	// certificate issued for the server's name cannot match; it sends
	// nothing secret and trusts only the status.
	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: *base == ""}},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", req.URL, resp.Status)
	}
	fmt.Fprintf(stdout, "ok: %s answered %s\n", req.URL, resp.Status)
	return nil
}

// localURL is the address a process on the same machine reaches the
// configured server at: LISTEN_ADDR, with an unspecified host (":8000",
// "0.0.0.0:8000", "[::]:8000") replaced by loopback.
func localURL(cfg config.Config) string {
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return scheme + "://" + cfg.ListenAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
