package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsToken is the METRICS_TOKEN of the tests that set one.
const metricsToken = "metrics-test-token-0123456789abcdef"

// startProcess runs the real command (the test binary running main) with
// args and env, and waits until it listens. Stop sends SIGTERM and expects
// a clean exit.
func startProcess(t testing.TB, args []string, env map[string]string) *testServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"MAPSIM_CHAT_AS_MAIN=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = t.TempDir() // no .env there
	s := &testServer{tb: t, env: env, stdout: &syncBuffer{listening: make(chan string, 1)}, logs: &syncBuffer{}, client: http.DefaultClient, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.stdout, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cancel = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		go func() { s.done <- <-exited }()
	}
	select {
	case s.URL = <-s.stdout.listening:
	case err := <-exited:
		t.Fatalf("the server exited at start: %v\nstdout:\n%s\nstderr:\n%s", err, s.stdout.String(), s.logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the server did not listen within 60 s\n%s", s.logs.String())
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", s.stdout.String(), s.logs.String())
		}
	})
	return s
}

// scrape is one read of /metrics, parsed.
type scrape map[string]*dto.MetricFamily

// get fetches /metrics with extra headers and returns the answer's status
// and body.
func (s *testServer) getMetrics(t testing.TB, client *http.Client, base string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// mustScrape reads /metrics from loopback and parses it.
func (s *testServer) mustScrape(t testing.TB) scrape {
	t.Helper()
	status, body := s.getMetrics(t, http.DefaultClient, s.URL, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics from loopback: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return families
}

// value is a counter's, gauge's or untyped family's value, or a
// histogram's count, for the series with the given label pairs ("" for a
// family without labels); -1 when there is no such series.
func (sc scrape) value(name string, labels ...string) float64 {
	f := sc[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// sum is a histogram's sum of observations.
func (sc scrape) sum(name string, labels ...string) float64 {
	f := sc[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			ok = ok && found
		}
		if ok && m.Histogram != nil {
			return m.Histogram.GetSampleSum()
		}
	}
	return -1
}

// families are the server's own families, every one of which a scrape must
// hold from the start (the README lists them).
var families = []string{
	"mapsim_build_info",
	"mapsim_ws_connections", "mapsim_ws_connections_opened_total", "mapsim_users_online", "mapsim_chats_live",
	"mapsim_ws_frames_written_total", "mapsim_ws_writes_total",
	"mapsim_messages_received_total", "mapsim_messages_delivered_total", "mapsim_messages_rejected_total",
	"mapsim_slow_clients_dropped_total", "mapsim_rate_limited_frames_total",
	"mapsim_logins_total", "mapsim_registrations_total",
	"mapsim_commit_group_size", "mapsim_commit_duration_seconds", "mapsim_db_query_duration_seconds",
	"mapsim_uploads_total", "mapsim_upload_bytes_total",
	"mapsim_janitor_runs_total", "mapsim_janitor_errors_total", "mapsim_janitor_files_expired_total",
	"mapsim_http_requests_total", "mapsim_http_request_duration_seconds",
	"mapsim_go_goroutines", "mapsim_process_resident_memory_bytes",
}

// brokerFamilies are the families a node among several adds (REDIS_URL);
// TestNodesSurviveRedisRestart checks them.
var brokerFamilies = []string{
	"mapsim_broker_up", "mapsim_broker_reconnects_total", "mapsim_broker_resyncs_total",
	"mapsim_broker_gaps_filled_total", "mapsim_broker_gaps_reordered_total", "mapsim_broker_events_replayed_total",
	"mapsim_broker_events_published_total", "mapsim_broker_events_received_total", "mapsim_broker_events_lost_total",
	"mapsim_broker_publish_errors_total", "mapsim_broker_publish_duration_seconds", "mapsim_broker_barrier_failures_total",
	"mapsim_broker_subscribed_shards", "mapsim_broker_shard_subscribes_total",
}

// waitMetric scrapes until cond holds of the scrape, for at most 15 s.
func (s *testServer) waitMetric(t testing.TB, what string, cond func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sc := s.mustScrape(t)
		if cond(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 15 s the metrics never showed %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsScenario: after a scenario that does one of everything —
// register, a failed and a good login, WebSocket messages (delivered,
// refused as invalid, over the message rate), a frame over the frame rate,
// an upload, a janitor run — every family is in the scrape and each
// counter moved by what the scenario did. The server is the real command
// in its own process, on SQLite and on MariaDB (whose statements the
// store's timing wrapper sees through the other driver).
func TestMetricsScenario(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			env := baseEnv(t, be.env(t))
			env["UPLOAD_CHECK_INTERVAL"] = "1s"
			env["RATE_LIMIT_MESSAGES_BURST"] = "3"
			env["RATE_LIMIT_MESSAGES_PER_SECOND"] = "0.01"
			env["RATE_LIMIT_FRAMES_BURST"] = "10"
			env["RATE_LIMIT_FRAMES_PER_SECOND"] = "0.01"
			srv := startProcess(t, []string{"serve"}, env)

			before := srv.mustScrape(t)
			for _, name := range families {
				if before[name] == nil {
					t.Errorf("family %s is missing from a fresh server's scrape", name)
				}
			}
			for name := range before {
				if !strings.HasPrefix(name, "mapsim_") {
					t.Errorf("family %s is not under the mapsim_ prefix", name)
				}
			}

			alice := srv.MustUser(t, "alice")
			srv.MustUser(t, "bob")
			bobTok := srv.MustLogin(t, "bob", testPassword)
			if r := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": "not the password"}); r.Status != http.StatusUnauthorized {
				t.Fatalf("wrong password: %d %s", r.Status, r.Raw)
			}
			a := srv.MustDial(t, alice, "global")
			a.nextType("hello")
			b := srv.MustDial(t, bobTok, "global")
			b.nextType("hello")

			// Two messages, committed and delivered to both connections.
			for i := range 2 {
				a.send(map[string]any{"type": "text", "text": fmt.Sprintf("hello %d", i), "client_id": fmt.Sprintf("m%d", i)})
				// (alice's own copy comes before the ack, which next skips)
				a.nextType("ack")
				b.next(func(f map[string]any) bool { return f["type"] == "text" && f["client_id"] == fmt.Sprintf("m%d", i) })
			}
			// An empty text: refused as invalid (it takes the third token
			// of the message burst).
			a.send(map[string]any{"type": "text", "text": "", "client_id": "empty"})
			if e := a.nextType("error"); e["code"] != "invalid" {
				t.Fatalf("empty text: %v", e)
			}
			// Over the message rate.
			a.send(map[string]any{"type": "text", "text": "one too many", "client_id": "over"})
			if e := a.nextType("error"); e["code"] != "too_many" {
				t.Fatalf("over the message rate: %v", e)
			}
			// Over the frame rate: bob's connection has sent nothing yet,
			// so the eleventh ping is refused.
			for range 11 {
				b.send(map[string]any{"type": "ping"})
			}
			if e := b.nextType("error"); e["code"] != "too_many" {
				t.Fatalf("over the frame rate: %v", e)
			}
			content := strings.Repeat("metrics ", 512)
			if r := srv.upload(t, alice, "global", "notes.txt", "text/plain", strings.NewReader(content)); r.Status != http.StatusCreated && r.Status != http.StatusOK {
				t.Fatalf("upload: %d %s", r.Status, r.Raw)
			}

			after := srv.waitMetric(t, "a janitor run", func(sc scrape) bool {
				return sc.value("mapsim_janitor_runs_total") > before.value("mapsim_janitor_runs_total")
			})
			delta := func(name string, labels ...string) float64 {
				return after.value(name, labels...) - before.value(name, labels...)
			}
			checks := []struct {
				name   string
				labels []string
				want   float64
			}{
				{"mapsim_registrations_total", nil, 2},
				{"mapsim_logins_total", []string{"result", "success"}, 3},
				{"mapsim_logins_total", []string{"result", "failure"}, 1},
				{"mapsim_logins_total", []string{"result", "throttled"}, 0},
				{"mapsim_ws_connections_opened_total", nil, 2},
				{"mapsim_messages_received_total", nil, 4},
				// Each message reached alice's and bob's connections.
				{"mapsim_messages_delivered_total", nil, 4},
				{"mapsim_messages_rejected_total", []string{"reason", "invalid"}, 1},
				{"mapsim_messages_rejected_total", []string{"reason", "too_many"}, 1},
				{"mapsim_messages_rejected_total", []string{"reason", "internal"}, 0},
				{"mapsim_rate_limited_frames_total", []string{"limit", "messages"}, 1},
				{"mapsim_rate_limited_frames_total", []string{"limit", "frames"}, 1},
				{"mapsim_slow_clients_dropped_total", nil, 0},
				{"mapsim_uploads_total", nil, 1},
				{"mapsim_upload_bytes_total", nil, float64(len(content))},
				{"mapsim_janitor_errors_total", nil, 0},
				{"mapsim_janitor_files_expired_total", nil, 0},
				{"mapsim_commit_group_size", nil, 2}, // the histogram's count: two groups of one
			}
			for _, c := range checks {
				if got := delta(c.name, c.labels...); got != c.want {
					t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if got := after.sum("mapsim_commit_group_size") - before.sum("mapsim_commit_group_size"); got != 2 {
				t.Errorf("commit groups held %v messages, want 2", got)
			}
			if got := delta("mapsim_commit_duration_seconds"); got != 2 {
				t.Errorf("commit latency observed %v times, want 2", got)
			}
			for _, op := range []string{"query", "exec", "commit"} {
				if got := delta("mapsim_db_query_duration_seconds", "op", op); got < 1 {
					t.Errorf("db_query_duration_seconds{op=%q} moved by %v", op, got)
				}
			}
			if got := after.value("mapsim_ws_connections"); got != 2 {
				t.Errorf("ws_connections = %v, want 2", got)
			}
			if got := after.value("mapsim_users_online"); got != 2 {
				t.Errorf("users_online = %v, want 2", got)
			}
			if got := delta("mapsim_http_requests_total", "code", "2xx"); got < 7 {
				t.Errorf("http_requests_total{code=2xx} moved by %v, want at least 7", got)
			}
			if got := delta("mapsim_http_requests_total", "code", "4xx"); got < 1 {
				t.Errorf("http_requests_total{code=4xx} moved by %v, want at least 1 (the failed login)", got)
			}
			if got := delta("mapsim_ws_frames_written_total"); got < 4 {
				t.Errorf("ws_frames_written_total moved by %v", got)
			}
			if after.value("mapsim_build_info", "version", "dev") != 1 {
				t.Errorf("build_info{version=dev} is not 1")
			}
		})
	}
}

// nonLoopbackAddr returns an address of this machine that is not loopback
// and that a server can listen on, or "" when there is none.
func nonLoopbackAddr() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0"))
		if err != nil {
			continue
		}
		ln.Close()
		return ipn.IP.String()
	}
	return ""
}

// TestMetricsAccess: /metrics answers loopback clients that no proxy
// relayed; to anyone else it answers 404 without METRICS_TOKEN, and with
// it 401 unless the scraper sends the token. "Anyone else" is tried two
// ways: from another address of this machine (the server listening on it,
// when the machine has one), and through a trusted proxy (TRUSTED_PROXIES
// naming loopback, the client's address in X-Forwarded-For). A proxy on the
// same machine that TRUSTED_PROXIES does not name still gives itself away
// by its forwarding headers.
func TestMetricsAccess(t *testing.T) {
	type try struct {
		name   string
		header http.Header
		want   int
	}
	bearer := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	forwarded := func(h http.Header) http.Header {
		out := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
		for k, v := range h {
			out[k] = v
		}
		return out
	}

	t.Run("no token", func(t *testing.T) {
		env := baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
		srv := MustStart(t, env)
		for _, c := range []try{
			{"loopback", nil, 200},
			{"loopback with a bearer", bearer("Bearer anything"), 200},
			{"through a trusted proxy", forwarded(nil), 404},
			{"through a trusted proxy with a bearer", forwarded(bearer("Bearer " + metricsToken)), 404},
			{"a proxy's Forwarded header", http.Header{"Forwarded": {"for=203.0.113.7"}}, 404},
			{"a proxy's X-Real-IP", http.Header{"X-Real-Ip": {"203.0.113.7"}}, 404},
		} {
			if got, body := srv.getMetrics(t, http.DefaultClient, srv.URL, c.header); got != c.want {
				t.Errorf("%s: %d, want %d: %.200s", c.name, got, c.want, body)
			} else if got == 404 && (strings.Contains(body, "mapsim_") || !strings.Contains(body, `"code":"not_found"`)) {
				t.Errorf("%s: the 404 is not the usual not_found answer: %.200s", c.name, body)
			}
		}
	})

	t.Run("untrusted proxy on this machine", func(t *testing.T) {
		srv := MustStart(t, baseEnv(t, nil))
		if got, body := srv.getMetrics(t, http.DefaultClient, srv.URL, forwarded(nil)); got != 404 {
			t.Errorf("relayed by a proxy TRUSTED_PROXIES does not name: %d, want 404: %.200s", got, body)
		}
	})

	t.Run("token", func(t *testing.T) {
		env := baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "METRICS_TOKEN": metricsToken})
		srv := MustStart(t, env)
		for _, c := range []try{
			{"loopback without the token", nil, 200},
			{"through a trusted proxy without a token", forwarded(nil), 401},
			{"through a trusted proxy, wrong token", forwarded(bearer("Bearer " + metricsToken + "x")), 401},
			{"through a trusted proxy, a prefix of the token", forwarded(bearer("Bearer " + metricsToken[:10])), 401},
			{"through a trusted proxy, basic auth", forwarded(bearer("Basic " + metricsToken)), 401},
			{"through a trusted proxy, the token", forwarded(bearer("Bearer " + metricsToken)), 200},
			{"through a trusted proxy, the token, lower-case scheme", forwarded(bearer("bearer " + metricsToken)), 200},
		} {
			got, body := srv.getMetrics(t, http.DefaultClient, srv.URL, c.header)
			if got != c.want {
				t.Errorf("%s: %d, want %d: %.200s", c.name, got, c.want, body)
			}
			if got == 200 && !strings.Contains(body, "mapsim_ws_connections ") {
				t.Errorf("%s: 200 without the metrics: %.200s", c.name, body)
			}
			if got == 401 && strings.Contains(body, "mapsim_") {
				t.Errorf("%s: a 401 that shows metrics", c.name)
			}
		}
	})

	t.Run("another address of this machine", func(t *testing.T) {
		ip := nonLoopbackAddr()
		if ip == "" {
			t.Skip("this machine has no address but loopback to listen on; the trusted-proxy cases cover a remote client")
		}
		for _, token := range []string{"", metricsToken} {
			env := baseEnv(t, map[string]string{"LISTEN_ADDR": net.JoinHostPort(ip, "0"), "METRICS_TOKEN": token})
			srv := MustStart(t, env)
			if !strings.Contains(srv.URL, ip) {
				t.Fatalf("the server listens on %s, not on %s", srv.URL, ip)
			}
			// The client connects from ip too: not loopback.
			client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
			cases := []try{{"no token", nil, 404}}
			if token != "" {
				cases = []try{{"no token", nil, 401}, {"wrong token", bearer("Bearer wrong-token-0123456789abcdefgh"), 401}, {"the token", bearer("Bearer " + token), 200}}
			}
			for _, c := range cases {
				if got, body := srv.getMetrics(t, client, srv.URL, c.header); got != c.want {
					t.Errorf("METRICS_TOKEN=%q, from %s, %s: %d, want %d: %.200s", token, ip, c.name, got, c.want, body)
				}
			}
		}
	})
}

var hexID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// TestRequestIDs: every answer carries X-Request-Id and its access log line
// the same request_id. An incoming X-Request-Id is kept only from a trusted
// proxy and only when well formed.
func TestRequestIDs(t *testing.T) {
	untrusted := MustStart(t, baseEnv(t, nil))
	trusted := MustStart(t, baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"}))
	long := strings.Repeat("a", 129)
	for _, c := range []struct {
		name string
		srv  *testServer
		in   string
		keep bool
	}{
		{"none", untrusted, "", false},
		{"from an untrusted client", untrusted, "planted-by-a-client", false},
		{"from a trusted proxy", trusted, "proxy-7f3a9c:span.01_x", true},
		{"a uuid from a trusted proxy", trusted, "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b", true},
		{"with a space", trusted, "two words", false},
		{"with a quote", trusted, `x"y`, false},
		{"with a newline escape", trusted, "a%0Ab", false},
		{"too long", trusted, long, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := "/healthz?case=" + url.QueryEscape(c.name)
			req, _ := http.NewRequest("GET", c.srv.URL+path, nil)
			if c.in != "" {
				req.Header.Set("X-Request-Id", c.in)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			id := resp.Header.Get("X-Request-Id")
			switch {
			case c.keep && id != c.in:
				t.Errorf("X-Request-Id %q, want the proxy's %q", id, c.in)
			case !c.keep && !hexID.MatchString(id):
				t.Errorf("X-Request-Id %q, want a fresh id (24 hex digits)", id)
			}
			c.srv.waitLog(t, "request_id="+id, 1)
			line := lastLine(c.srv.logs.String(), "request_id="+id)
			if !strings.Contains(line, "path=/healthz") {
				t.Errorf("the access line of the request does not carry its id: %q", line)
			}
		})
	}
	// Ids are not reused.
	seen := map[string]bool{}
	for range 20 {
		resp, err := http.Get(untrusted.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("request id %s given twice", id)
		}
		seen[id] = true
	}
}

// TestWebSocketLogsConnID: every log line about a WebSocket carries its
// conn_id: the access line of the upgrade, the opened and closed lines,
// and the warning of a refused frame's failure paths; one connection's
// lines share one id and two connections have two.
func TestWebSocketLogsConnID(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	tok := srv.MustUser(t, "alice")
	for i := range 2 {
		c := srv.MustDial(t, tok, "global")
		c.nextType("hello")
		c.send(map[string]any{"type": "text", "text": "hi", "client_id": fmt.Sprintf("c%d", i)})
		c.nextType("ack")
		c.conn.Close(1000, "bye")
	}
	srv.waitLog(t, "websocket closed", 2)
	ids := map[string]int{}
	idRE := regexp.MustCompile(`conn_id=([0-9a-f]{16})`)
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		if !strings.Contains(line, "websocket") && !strings.Contains(line, "path=/ws ") {
			continue
		}
		m := idRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("a WebSocket line without conn_id: %s", line)
			continue
		}
		ids[m[1]]++
	}
	if len(ids) != 2 {
		t.Fatalf("want two conn_ids, found %v", ids)
	}
	// The opened line carries the upgrade request's request_id, which joins
	// it to the access line.
	reqRE := regexp.MustCompile(`request_id=([0-9a-f]{24})`)
	for id := range ids {
		opened := lastLine(srv.logs.String(), `msg="websocket opened" conn_id=`+id)
		m := reqRE.FindStringSubmatch(opened)
		if m == nil {
			t.Errorf("websocket opened without the upgrade's request_id: %q", opened)
			continue
		}
		if line := lastLine(srv.logs.String(), "request_id="+m[1]+" method=GET path=/ws "); !strings.Contains(line, "conn_id="+id) {
			t.Errorf("the upgrade's access line (request_id=%s) does not carry conn_id=%s: %q", m[1], id, line)
		}
	}
	for id, n := range ids {
		// The upgrade's access line, opened, closed.
		if n != 3 {
			t.Errorf("conn_id %s is on %d lines, want 3 (access, opened, closed)", id, n)
		}
	}
}

// TestJSONLogsEverywhere: the real command with LOG_FORMAT=json, started
// with no argument at all (serve is the default), writes nothing that is
// not a JSON object on either stream, the banner included, through a
// scenario that logs requests, logins, WebSockets, an upload, a refused
// login and its stop; and no line holds the password, a token, a ticket, a
// message's text or a file's content. A bad setting in JSON mode ends the
// start with a JSON line too.
func TestJSONLogsEverywhere(t *testing.T) {
	env := baseEnv(t, nil)
	env["LOG_FORMAT"] = "json"
	srv := startProcess(t, nil, env)
	tok := srv.MustUser(t, "alice")
	if r := srv.call(t, "POST", "/login/", "", map[string]string{"username": "alice", "password": "wrong-password-1"}); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.Status)
	}
	ticket := srv.call(t, "POST", "/ws-ticket/", tok, nil).str("ticket")
	c, err := srv.dial(t, "ticket="+url.QueryEscape(ticket)+"&chat_name=global", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.nextType("hello")
	secretText := "the body of a secret message 4b1d"
	c.send(map[string]any{"type": "text", "text": secretText, "client_id": "j1"})
	c.nextType("ack")
	c.conn.Close(1000, "")
	// The token in the URL is allowed and must be redacted.
	c2, err := srv.dial(t, "token="+url.QueryEscape(tok)+"&chat_name=global", nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.nextType("hello")
	c2.conn.Close(1000, "")
	fileContent := "file content that must not be logged 9c2e"
	if r := srv.upload(t, tok, "global", "notes.txt", "text/plain", strings.NewReader(fileContent)); r.Status >= 300 {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	srv.call(t, "GET", "/no-such-page", "", nil)
	srv.waitLog(t, `"msg":"websocket closed"`, 2)
	srv.Stop(t)

	for stream, text := range map[string]string{"stdout": srv.stdout.String(), "stderr": srv.logs.String()} {
		lines := 0
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
			var v map[string]any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Errorf("%s: a line that is not a JSON object: %q", stream, sc.Text())
				continue
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := v[k]; !ok {
					t.Errorf("%s: a line without %q: %s", stream, k, sc.Text())
				}
			}
		}
		if lines == 0 {
			t.Errorf("%s is empty", stream)
		}
		for what, secret := range map[string]string{"the password": testPassword, "a wrong password": "wrong-password-1",
			"the access token": tok, "the ticket": ticket, "a message's text": secretText, "a file's content": fileContent} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s", stream, what)
			}
		}
	}
	// A line a service logs during a request carries the request's id.
	if line := lastLine(srv.logs.String(), `"msg":"file stored"`); !regexp.MustCompile(`"request_id":"[0-9a-f]{24}"`).MatchString(line) {
		t.Errorf("the upload's file stored line has no request_id: %s", line)
	}
	if !strings.Contains(srv.stdout.String(), `"msg":"Mapsim Chat listening on http://`) {
		t.Errorf("no JSON banner on stdout: %s", srv.stdout.String())
	}
	for _, want := range []string{`"msg":"request"`, `"request_id":"`, `"msg":"websocket opened"`, `"conn_id":"`, `"msg":"login refused"`, `"msg":"file stored"`, `"msg":"stopped"`, "token=REDACTED"} {
		if !strings.Contains(srv.logs.String(), want) {
			t.Errorf("the JSON logs lack %s", want)
		}
	}

	t.Run("a bad setting", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "serve")
		cmd.Env = []string{"MAPSIM_CHAT_AS_MAIN=1", "LOG_FORMAT=json", "METRICS_TOKEN=short", "DATA_DIR=" + t.TempDir(), "LISTEN_ADDR=127.0.0.1:0"}
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("a bad METRICS_TOKEN was accepted:\n%s", out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, l := range lines {
			var v map[string]any
			if json.Unmarshal([]byte(l), &v) != nil {
				t.Errorf("not a JSON line: %q", l)
			} else if v["level"] != "ERROR" || !strings.Contains(fmt.Sprint(v["msg"]), "METRICS_TOKEN") {
				t.Errorf("the error line does not name METRICS_TOKEN at level ERROR: %s", l)
			}
		}
	})
}
