package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dashboardExprs returns every PromQL expression of the Grafana dashboard:
// each panel's targets (rows' nested panels too) and each templating query,
// named by where they are.
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	type panel struct {
		ID      int             `json:"id"`
		Title   string          `json:"title"`
		Type    string          `json:"type"`
		Targets []target        `json:"targets"`
		Panels  json.RawMessage `json:"panels"`
		GridPos *struct{ H, W, X, Y int }
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
	exprs := map[string]string{}
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %q has no place on the grid", p.Title)
			}
			if p.Type == "row" {
				var nested []panel
				if len(p.Panels) > 0 {
					json.Unmarshal(p.Panels, &nested)
				}
				walk(nested)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query %s", p.Title, tg.RefID)
				}
				exprs[fmt.Sprintf("panel %q %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Type == "query" {
				exprs["variable "+v.Name] = q
			}
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs["variable "+v.Name] = s
			}
		}
	}
	return exprs
}

var (
	metricName  = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\b`)
	labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	// byLabels are the labels of "by (…)" and "without (…)" clauses.
	byLabels = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// TestGrafanaDashboard: every expression of deploy/grafana-dashboard.json
// names only metrics that a real scrape of the server holds (a histogram's
// _bucket, _sum and _count series included), groups only by labels those
// metrics carry, and parses as PromQL (promtool check rules).
func TestGrafanaDashboard(t *testing.T) {
	path := filepath.Join(repoRoot(t), "deploy", "grafana-dashboard.json")
	exprs := dashboardExprs(t, path)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}

	srv := MustStart(t, baseEnv(t, nil))
	sc := srv.mustScrape(t)
	// series names a query may use, with the labels each carries.
	series := map[string]map[string]bool{}
	for name, f := range sc {
		labels := map[string]bool{"instance": true, "job": true} // added by Prometheus
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				labels[lp.GetName()] = true
			}
		}
		series[name] = labels
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				l := map[string]bool{"le": suffix == "_bucket"}
				for k := range labels {
					l[k] = true
				}
				series[name+suffix] = l
			}
		}
	}

	used := map[string]bool{}
	for where, expr := range exprs {
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			if series[m[1]] == nil {
				t.Errorf("%s: %s is not in a scrape of the server", where, m[1])
			} else if !series[m[1]][m[2]] {
				t.Errorf("%s: %s has no label %s", where, m[1], m[2])
			}
			used[m[1]] = true
			continue
		}
		// Drop strings (label values such as "$instance") before looking
		// for names.
		bare := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
		var names []string
		for _, tok := range metricName.FindAllString(bare, -1) {
			if strings.HasPrefix(tok, "mapsim_") {
				names = append(names, tok)
			} else if strings.Contains(tok, "_") && !strings.HasPrefix(tok, "histogram_") && !strings.HasPrefix(tok, "label_") {
				t.Errorf("%s: %q looks like a metric that is not the server's", where, tok)
			}
		}
		if len(names) == 0 {
			t.Errorf("%s names no mapsim_ metric: %s", where, expr)
		}
		for _, name := range names {
			labels := series[name]
			if labels == nil {
				t.Errorf("%s: %s is not in a scrape of the server", where, name)
				continue
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
			for _, m := range byLabels.FindAllStringSubmatch(bare, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !labels[l] {
						t.Errorf("%s: groups %s by %q, a label it does not have", where, name, l)
					}
				}
			}
		}
		if strings.Contains(expr, "histogram_quantile") && !strings.Contains(expr, "_bucket") {
			t.Errorf("%s: histogram_quantile needs the _bucket series: %s", where, expr)
		}
	}
	// The dashboard shows each family the issue asks for.
	for _, name := range []string{"mapsim_ws_connections", "mapsim_messages_received_total", "mapsim_messages_delivered_total",
		"mapsim_messages_rejected_total", "mapsim_slow_clients_dropped_total", "mapsim_rate_limited_frames_total",
		"mapsim_logins_total", "mapsim_commit_group_size", "mapsim_commit_duration_seconds", "mapsim_db_query_duration_seconds",
		"mapsim_upload_bytes_total", "mapsim_janitor_runs_total", "mapsim_janitor_errors_total"} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}

	// promtool parses each expression as the rule it could be.
	promtool := needCommand(t, "promtool", "prometheus")
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	n := 0
	for where, expr := range exprs {
		if strings.HasPrefix(where, "variable ") {
			continue // label_values() is Grafana's, not PromQL
		}
		n++
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "  - record: dashboard:expr%d\n    expr: %s\n", n, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}

// readmeYAML returns the ```yaml blocks of README.md between a heading and
// the next heading of the same level.
func readmeYAML(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no heading %q", heading)
	}
	rest := readme[i+len(heading)+2:]
	if j := strings.Index(rest, "\n### "); j >= 0 {
		rest = rest[:j]
	}
	var blocks []string
	for {
		open := strings.Index(rest, "\n```yaml\n")
		if open < 0 {
			return blocks
		}
		rest = rest[open+len("\n```yaml\n"):]
		end := strings.Index(rest, "\n```\n")
		if end < 0 {
			t.Fatalf("a yaml block after %q does not end", heading)
		}
		blocks = append(blocks, rest[:end+1])
		rest = rest[end:]
	}
}

// promQuery asks Prometheus's HTTP API for an instant query.
func promQuery(t *testing.T, base, query string) (status string, result []map[string]any, errText string) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return "", nil, err.Error()
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []map[string]any `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", nil, err.Error()
	}
	return out.Status, out.Data.Result, out.Error
}

// TestPrometheusScrapes: a real Prometheus, configured with the README's
// scrape jobs (their targets pointed at test servers; the second over plain
// HTTP), scrapes the server from loopback without a token and from another
// address of this machine with METRICS_TOKEN read from a file; then every
// query of the Grafana dashboard runs in it without an error, and those
// that need no second sample return series.
func TestPrometheusScrapes(t *testing.T) {
	prom := needCommand(t, "prometheus", "prometheus")
	blocks := readmeYAML(t, "### Metrics")
	if len(blocks) != 2 {
		t.Fatalf("want two scrape examples under ### Metrics, found %d", len(blocks))
	}
	local := MustStart(t, baseEnv(t, nil))
	config := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" +
		strings.Replace(blocks[0], `"127.0.0.1:8000"`, `"`+strings.TrimPrefix(local.URL, "http://")+`"`, 1)
	wantJobs := []string{"mapsim-chat"}
	if ip := nonLoopbackAddr(); ip != "" {
		remote := MustStart(t, baseEnv(t, map[string]string{"LISTEN_ADDR": net.JoinHostPort(ip, "0"), "METRICS_TOKEN": metricsToken}))
		tokenFile := filepath.Join(t.TempDir(), "mapsim-chat.token")
		if err := os.WriteFile(tokenFile, []byte(metricsToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		second := strings.TrimPrefix(blocks[1], "scrape_configs:\n")
		for old, repl := range map[string]string{
			"job_name: mapsim-chat":             "job_name: mapsim-chat-remote",
			"scheme: https":                     "scheme: http",
			"/etc/prometheus/mapsim-chat.token": tokenFile,
			`"chat.example.com"`:                `"` + strings.TrimPrefix(remote.URL, "http://") + `"`,
		} {
			if !strings.Contains(second, old) {
				t.Fatalf("the README's second scrape example no longer has %q:\n%s", old, blocks[1])
			}
			second = strings.Replace(second, old, repl, 1)
		}
		config += second
		wantJobs = append(wantJobs, "mapsim-chat-remote")
	} else {
		t.Log("no address but loopback on this machine: the token job is not tried")
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(prom, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus config:\n%s\nprometheus logs:\n%s", config, logs.String())
		}
	})
	base := "http://" + listen

	// Every job up, twice sampled (so that rate() has two points).
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, job := range wantJobs {
			_, res, _ := promQuery(t, base, fmt.Sprintf(`count_over_time(up{job=%q}[1m]) >= 2 and up{job=%q} == 1`, job, job))
			ok = ok && len(res) == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			_, res, _ := promQuery(t, base, "up")
			t.Fatalf("within 60 s Prometheus did not scrape every job twice: up = %v", res)
		}
		time.Sleep(200 * time.Millisecond)
	}

	for where, expr := range dashboardExprs(t, filepath.Join(repoRoot(t), "deploy", "grafana-dashboard.json")) {
		if strings.HasPrefix(where, "variable ") {
			continue
		}
		q := strings.ReplaceAll(expr, "$instance", ".*")
		status, res, errText := promQuery(t, base, q)
		if status != "success" {
			t.Errorf("%s: Prometheus refused %s: %s", where, q, errText)
			continue
		}
		needsTwo := strings.Contains(q, "rate(") || strings.Contains(q, "increase(")
		if !needsTwo && len(res) == 0 {
			t.Errorf("%s: %s returned no series", where, q)
		}
	}
}
