package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
