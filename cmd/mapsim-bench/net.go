package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// loopback is 127.0.0.0/8: the only addresses the tool talks to or from.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// checkURL accepts only http://127.x.y.z[:port] (or localhost, taken as
// 127.0.0.1), so that a load run can never leave the machine.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("-url %q: must start with http:// (the tool talks only to a server on this machine)", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("-url %q: give only http://127.0.0.1:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !loopback.Contains(ip) {
		return nil, fmt.Errorf("-url %q: the host must be a loopback address 127.x.y.z; the tool refuses to load anything else", raw)
	}
	port := u.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("-url %q: bad port", raw)
		}
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), cmpOr(port, "80"))}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// maxSourceAddrs bounds -source-addrs.
const maxSourceAddrs = 256

// parseSourceAddrs reads a list of loopback addresses: comma-separated
// addresses and ranges such as 127.0.0.1-127.0.0.8 (the last octet varies).
func parseSourceAddrs(spec string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(from))
		if err != nil || !a.Is4() || !loopback.Contains(a) {
			return nil, fmt.Errorf("-source-addrs: %q is not a loopback address 127.x.y.z", from)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(to)); err != nil || !b.Is4() || !loopback.Contains(b) {
				return nil, fmt.Errorf("-source-addrs: %q is not a loopback address 127.x.y.z", to)
			}
			a4, b4 := a.As4(), b.As4()
			if a4[0] != b4[0] || a4[1] != b4[1] || a4[2] != b4[2] || a4[3] > b4[3] {
				return nil, fmt.Errorf("-source-addrs: range %q must vary only the last number, upwards (127.0.0.1-127.0.0.8)", part)
			}
		}
		for ip := a; ; ip = ip.Next() {
			if !seen[ip] {
				if len(out) == maxSourceAddrs {
					return nil, fmt.Errorf("-source-addrs: at most %d addresses", maxSourceAddrs)
				}
				seen[ip] = true
				out = append(out, ip)
			}
			if ip == b {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-source-addrs: no address given")
	}
	return out, nil
}

// newDialer opens TCP connections from the source address src.
func newDialer(src netip.Addr) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
}

// newHTTPClient makes a client whose connections leave from src. It has no
// overall timeout; callers bound each request with a context.
func newHTTPClient(src netip.Addr, idle int) *http.Client {
	d := newDialer(src)
	return &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// api is the server's REST API, as far as the tool uses it.
type api struct {
	base *url.URL
	hc   *http.Client
}

// apiError is an error answer from the server.
type apiError struct {
	Status     int
	Code       string
	Detail     string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Detail)
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// do sends one request with a 60 s bound and decodes a JSON answer into
// out. A 429 or 503 is retried after Retry-After (at most 5 times).
func (a *api) do(ctx context.Context, method, path, token string, body any, out any) error {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	for attempt := 0; ; attempt++ {
		err := a.once(ctx, method, path, token, raw, out)
		var ae *apiError
		if !errors.As(err, &ae) || (ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusServiceUnavailable) || attempt == 5 {
			return err
		}
		wait := min(max(ae.RetryAfter, 200*time.Millisecond), 10*time.Second)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (a *api) once(ctx context.Context, method, path, token string, raw []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base.String()+path, rd)
	if err != nil {
		return err
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		ae := &apiError{Status: resp.StatusCode}
		var e struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		json.Unmarshal(data, &e)
		ae.Code, ae.Detail = e.Code, e.Detail
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// register creates a user; an existing one is not an error.
func (a *api) register(ctx context.Context, username, password string) error {
	err := a.do(ctx, http.MethodPost, "/register/", "", map[string]string{"username": username, "password": password}, nil)
	if statusOf(err) == http.StatusConflict {
		return nil
	}
	return err
}

func (a *api) login(ctx context.Context, username, password string) (string, error) {
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := a.do(ctx, http.MethodPost, "/login/", "", map[string]string{"username": username, "password": password}, &out); err != nil {
		return "", err
	}
	return out.AccessToken, nil
}

func (a *api) ticket(ctx context.Context, token string) (string, error) {
	var out struct {
		Ticket string `json:"ticket"`
	}
	err := a.do(ctx, http.MethodPost, "/ws-ticket/", token, nil, &out)
	return out.Ticket, err
}

// chatInfo is the part of a chat the tool uses.
type chatInfo struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Title         string `json:"title"`
	LastMessageID *int64 `json:"last_message_id"`
}

func (a *api) createGroup(ctx context.Context, token, title string, members []string) (chatInfo, error) {
	var out chatInfo
	err := a.do(ctx, http.MethodPost, "/chats/", token, map[string]any{"e2ee": false, "kind": "group", "title": title, "members": members}, &out)
	return out, err
}

func (a *api) addMembers(ctx context.Context, token, chatName string, members []string) (chatInfo, error) {
	var out chatInfo
	err := a.do(ctx, http.MethodPost, "/chats/"+url.PathEscape(chatName)+"/members", token, map[string]any{"members": members}, &out)
	return out, err
}

// historyPage is a page of GET /messages/.
type historyPage struct {
	Messages []struct {
		ID int64 `json:"id"`
	} `json:"messages"`
	HasMore bool `json:"has_more"`
}

// messages fetches a history page and returns it with the time to its last
// byte.
func (a *api) messages(ctx context.Context, token string, chatID, before int64, limit int) (historyPage, time.Duration, error) {
	q := url.Values{"chat_id": {strconv.FormatInt(chatID, 10)}, "limit": {strconv.Itoa(limit)}}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base.String()+"/messages/?"+q.Encode(), nil)
	if err != nil {
		return historyPage{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return historyPage{}, 0, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	took := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return historyPage{}, took, err
	}
	if resp.StatusCode != http.StatusOK {
		return historyPage{}, took, &apiError{Status: resp.StatusCode, Detail: string(data[:min(len(data), 200)])}
	}
	var page historyPage
	err = json.Unmarshal(data, &page)
	return page, took, err
}

func (a *api) healthz(ctx context.Context) error {
	return a.do(ctx, http.MethodGet, "/healthz", "", nil, nil)
}
