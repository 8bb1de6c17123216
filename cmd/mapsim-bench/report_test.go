package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// firstTarget is the first of targets for a scenario.
func firstTarget(t *testing.T, scenario string) target {
	t.Helper()
	for _, tg := range targets {
		if tg.scenario == scenario {
			return tg
		}
	}
	t.Fatalf("no target for %s", scenario)
	return target{}
}

func TestJudgeFanout(t *testing.T) {
	fanout := firstTarget(t, "fanout")
	full := func(perSec, p99 float64, lost int64) *result {
		return &result{Scenario: "fanout", Label: "sqlite", DeliveriesPerSec: perSec, OfferedRate: 120,
			Params:     params{Clients: 1000, Duration: 60, Rate: 120},
			Latency:    &summary{P99: p99},
			Deliveries: &delivery{Acked: 100, Expected: 100000, Lost: lost}}
	}
	small := full(50000, 10, 0) // 500 members at 100 msgs/s: 50,000 offered
	small.Params.Clients, small.OfferedRate, small.Deliveries.Expected = 500, 100, 50000
	smallSlow := full(40000, 10, 0)
	smallSlow.Params.Clients, smallSlow.OfferedRate, smallSlow.Deliveries.Expected = 500, 100, 50000
	for _, tc := range []struct {
		name string
		r    *result
		want string
	}{
		{"all met", full(120000, 12, 0), "met"},
		{"too slow", full(90000, 12, 0), "**not met**"},
		{"p99 over", full(120000, 51, 0), "**not met**"},
		{"one lost", full(120000, 12, 1), "**not met**"},
		{"smaller run that kept up", small, "met at this size (smaller than the target's)"},
		{"smaller run that fell behind", smallSlow, "**not met** even at this size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, status := judge(fanout, tc.r); status != tc.want {
				t.Errorf("status %q, want %q", status, tc.want)
			}
		})
	}
}

func TestReportPicksTargetsByDatabase(t *testing.T) {
	commits := func(label string, rate, perSec float64) *result {
		return &result{Scenario: "commits", Label: label, CommitsPerSec: perSec, Params: params{Rate: rate, Senders: 256},
			Ack: &summary{P50: 3, P99: 12}, Deliveries: &delivery{}}
	}
	var buf bytes.Buffer
	writeReport(&buf, []*result{commits("mariadb", 10000, 10000)})
	out := buf.String()
	if !strings.Contains(out, "≥ 10,000 commits/s") || strings.Contains(out, "30,000") || !strings.Contains(out, "| met |") {
		t.Errorf("MariaDB's commit target is 10,000/s:\n%s", out)
	}
	buf.Reset()
	writeReport(&buf, []*result{commits("sqlite", 30000, 12000)})
	if out := buf.String(); !strings.Contains(out, "≥ 30,000 commits/s") || !strings.Contains(out, "**not met**") {
		t.Errorf("SQLite at 12,000/s misses 30,000/s:\n%s", out)
	}
}

func TestReportSweepTarget(t *testing.T) {
	run := func(rate, perSec, p99 float64) *result {
		return &result{Scenario: "fanout", Label: "sqlite", DeliveriesPerSec: perSec, OfferedRate: rate,
			Params:     params{Clients: 1000, Duration: 30, Rate: rate},
			Latency:    &summary{P99: p99},
			Deliveries: &delivery{Acked: 100, Expected: 100000}}
	}
	var buf bytes.Buffer
	writeReport(&buf, []*result{run(100, 100000, 40), run(180, 180000, 150), run(220, 200000, 400)})
	lines := strings.Split(buf.String(), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "| fanout |") {
			rows = append(rows, l)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("want one row a run:\n%s", buf.String())
	}
	if !strings.Contains(rows[0], "≥ 100,000") || !strings.Contains(rows[1], "≥ 180,000") || !strings.Contains(rows[2], "≥ 180,000") {
		t.Fatalf("runs judged against the wrong targets:\n%s", strings.Join(rows, "\n"))
	}
	if !strings.HasSuffix(rows[1], "| met |") || !strings.Contains(rows[2], "not met") {
		t.Fatalf("180 msgs/s at p99 150 ms meets the sweep target, 220 at p99 400 does not:\n%s", strings.Join(rows, "\n"))
	}
}

// The history target is judged on the pages timed once the machine was
// quiet, and the report shows the pages right after the fill beside them.
func TestJudgeHistory(t *testing.T) {
	history := firstTarget(t, "history")
	r := &result{Scenario: "history", Label: "sqlite", History: &historyResult{
		Messages: 10_000_000, PageSize: 50,
		pageTimes:     pageTimes{Newest: summary{P99: 3}, Oldest: summary{P99: 4}, Random: summary{P99: 4.5}},
		AfterFill:     &pageTimes{Newest: summary{P99: 9}, Oldest: summary{P99: 8}, Random: summary{P99: 12}},
		SettleSeconds: 14, Settled: true,
	}}
	_, measured, status := judge(history, r)
	if status != "met" || !strings.Contains(measured, "machine was quiet, after a wait of 14 s") || !strings.Contains(measured, "right after it: 9.00, 8.00, 12.0") {
		t.Errorf("%q: %q", status, measured)
	}
	r.History.Settled = false
	r.History.Random.P99 = 5.5
	if _, measured, status = judge(history, r); status != "**not met**" || !strings.Contains(measured, "NOT yet quiet") {
		t.Errorf("not quiet and over: %q: %q", status, measured)
	}
}

// The measured pages stay at the history object's top level in the JSON,
// where earlier runs' lines (read again by REPORT_ONLY) have them.
func TestHistoryJSONKeepsPagesAtTopLevel(t *testing.T) {
	line := []byte(`{"messages":10,"page_size":50,"newest":{"p99_ms":1.5},"oldest":{"p99_ms":2.5},"random":{"p99_ms":3.5}}`)
	var h historyResult
	if err := json.Unmarshal(line, &h); err != nil || h.Newest.P99 != 1.5 || h.Oldest.P99 != 2.5 || h.Random.P99 != 3.5 {
		t.Fatalf("an earlier line reads as %+v, %v", h, err)
	}
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(out, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"newest", "oldest", "random"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("%s is not at the top level: %s", k, out)
		}
	}
}
