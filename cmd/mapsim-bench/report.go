package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// A target is one line of the load-testing issue: the size it is stated
// at, and the checks it makes. A run smaller than the stated size is
// judged at its own size and says so.
type target struct {
	scenario string
	label    string                         // the database it applies to; "" for any
	text     string                         // the target as the issue states it
	atSize   func(r *result) (bool, string) // whether the run is at the stated size, and its size
	checks   func(r *result) (measured string, ok bool)
	// onlyFor names the one database the target is stated for; on another,
	// the row is shown for comparison and judged as such.
	onlyFor string
	// applies, if set, picks the runs of the scenario the target is about.
	applies func(r *result) bool
}

// highRate tells the fan-out rate sweep (which looks for the highest rate
// held with p99 ≤ 200 ms) from the standard fan-out run.
func highRate(r *result) bool { return offeredDeliveries(r) > 120000 }

func maxP99(ss ...summary) float64 {
	m := 0.0
	for _, s := range ss {
		m = max(m, s.P99)
	}
	return m
}

func lossText(d *delivery) string {
	if d == nil {
		return "no accounting"
	}
	return fmt.Sprintf("%d lost, %d dup", d.Lost, d.Duplicates)
}

func noLoss(d *delivery) bool {
	return d != nil && d.Lost == 0 && d.Duplicates == 0 && d.Reordered == 0 && d.Unacked == 0
}

var targets = []target{
	{
		scenario: "idle", text: "19,000 connections held 5 min, RSS ≤ 16 KiB/conn",
		atSize: func(r *result) (bool, string) {
			return r.Connections >= 19000 && r.Params.Duration >= 300, fmt.Sprintf("%d conns, %gs", r.Connections, r.Params.Duration)
		},
		checks: func(r *result) (string, bool) {
			if r.Server == nil {
				return "no -server-pid", false
			}
			per := max(r.Server.RSSPerConnKiB, r.Server.RSSPerConnEndKiB)
			return fmt.Sprintf("%.1f KiB/conn (%.1f at the end); %d dropped; connect p99 %s ms",
				r.Server.RSSPerConnKiB, r.Server.RSSPerConnEndKiB, r.Drops, ms(r.Connect.P99)), per <= 16 && r.Drops == 0 && r.ConnectFailed == 0
		},
	},
	{
		scenario: "fanout", text: "one 1,000-member room on SQLite: ≥ 100,000 deliveries/s for 60 s, zero loss, p99 ≤ 50 ms",
		atSize: func(r *result) (bool, string) {
			return r.Params.Clients >= 1000 && r.Params.Duration >= 60, fmt.Sprintf("%d members, %g msgs/s, %gs", r.Params.Clients, r.Params.Rate, r.Params.Duration)
		},
		onlyFor: "sqlite",
		applies: func(r *result) bool { return !highRate(r) },
		checks:  deliveryCheck(100000, 50),
	},
	{
		scenario: "fanout", text: "one 1,000-member room on SQLite: highest sustained rate with p99 ≤ 200 ms ≥ 180,000 deliveries/s",
		atSize: func(r *result) (bool, string) {
			return r.Params.Clients >= 1000, fmt.Sprintf("%d members, %g msgs/s, %gs", r.Params.Clients, r.Params.Rate, r.Params.Duration)
		},
		onlyFor: "sqlite",
		applies: highRate,
		checks: func(r *result) (string, bool) {
			l := deref(r.Latency)
			return fmt.Sprintf("%.0f deliveries/s (%.0f offered), p99 %s ms, %s", r.DeliveriesPerSec, offeredDeliveries(r), ms(l.P99), lossText(r.Deliveries)),
				r.DeliveriesPerSec >= 180000 && l.P99 <= 200 && noLoss(r.Deliveries)
		},
	},
	{
		scenario: "rooms", text: "2,000 rooms of 5–10 members: ≥ 25,000 deliveries/s, p99 ≤ 50 ms",
		atSize: func(r *result) (bool, string) {
			return r.Rooms >= 2000, fmt.Sprintf("%d rooms of %s, %g msgs/s, %gs", r.Rooms, r.Params.RoomSize, r.Params.Rate, r.Params.Duration)
		},
		checks: deliveryCheck(25000, 50),
	},
	{
		scenario: "commits", label: "sqlite", text: "≥ 30,000 commits/s, ack p99 ≤ 20 ms",
		atSize: func(r *result) (bool, string) { return r.Params.Rate >= 30000, offered(r) },
		checks: commitsCheck(30000),
	},
	{
		scenario: "commits", label: "mariadb", text: "≥ 10,000 commits/s, ack p99 ≤ 20 ms",
		atSize: func(r *result) (bool, string) { return r.Params.Rate >= 10000, offered(r) },
		checks: commitsCheck(10000),
	},
	{
		scenario: "history", text: "a page of 50 at 10 million messages: p99 ≤ 5 ms",
		atSize: func(r *result) (bool, string) {
			n := int64(0)
			if r.History != nil {
				n = r.History.Messages
			}
			return n >= 10_000_000 && r.History.PageSize == 50, fmt.Sprintf("%d messages in the room", n)
		},
		checks: func(r *result) (string, bool) {
			h := r.History
			if h == nil {
				return "no history", false
			}
			p := maxP99(h.Newest, h.Oldest, h.Random)
			text := fmt.Sprintf("p99 newest %s, oldest %s, random %s ms", ms(h.Newest.P99), ms(h.Oldest.P99), ms(h.Random.P99))
			if a := h.AfterFill; a != nil {
				quiet := fmt.Sprintf("timed once the machine was quiet, after a wait of %.0f s", h.SettleSeconds)
				if !h.Settled {
					quiet = fmt.Sprintf("timed after a wait of %.0f s, the machine NOT yet quiet", h.SettleSeconds)
				}
				text += fmt.Sprintf(" (%s; right after it: %s, %s, %s)", quiet, ms(a.Newest.P99), ms(a.Oldest.P99), ms(a.Random.P99))
			}
			return text, p <= 5 && h.Errors == 0 && h.BadPages == 0
		},
	},
	{
		scenario: "history", text: "(the fill, for information) commits/s with every sender's in-flight window full",
		atSize: func(r *result) (bool, string) {
			return true, fmt.Sprintf("%d senders × %d in flight", r.Params.Senders, r.Params.Inflight)
		},
		checks: func(r *result) (string, bool) {
			return fmt.Sprintf("%.0f commits/s, ack p99 %s ms", r.CommitsPerSec, ms(deref(r.Ack).P99)), true
		},
	},
	{
		scenario: "reconnect", text: "15,000 clients back and caught up within 15 s, zero loss",
		atSize: func(r *result) (bool, string) {
			return r.Connections >= 15000, fmt.Sprintf("%d clients in rooms of %s, %g msgs/s", r.Connections, r.Params.RoomSize, r.Params.Rate)
		},
		checks: func(r *result) (string, bool) {
			rc := r.Reconnect
			if rc == nil {
				return "no storm", false
			}
			return fmt.Sprintf("%d/%d back in %.2f s (each: p99 %s ms), %s", rc.Back, rc.Clients, rc.AllBackSeconds, ms(rc.PerClient.P99), lossText(r.Deliveries)),
				rc.Back == rc.Clients && rc.AllBackSeconds <= 15 && noLoss(r.Deliveries)
		},
	},
	{
		scenario: "failover", text: "a killed node's 5,000 clients back on the others and caught up within 10 s, zero loss",
		atSize: func(r *result) (bool, string) {
			f := r.Failover
			if f == nil {
				return false, "no kill"
			}
			return f.Clients >= 5000, fmt.Sprintf("%d of %d clients on the killed node, rooms of %s, %g msgs/s", f.Clients, r.Connections, r.Params.RoomSize, r.Params.Rate)
		},
		checks: func(r *result) (string, bool) {
			f := r.Failover
			if f == nil {
				return "no kill", false
			}
			return fmt.Sprintf("%d/%d back in %.2f s, caught up in %.2f s (each: p99 %s ms), %s", f.Back, f.Clients, f.AllBackSeconds, f.AllCaughtUpSeconds, ms(f.CaughtUpEach.P99), lossText(r.Deliveries)),
				f.Back == f.Clients && f.CaughtUp == f.Clients && f.Missing == 0 && f.AllCaughtUpSeconds <= 10 && noLoss(r.Deliveries)
		},
	},
}

// offeredDeliveries is the delivery rate a run asked for: its message rate
// times the receivers of each message.
func offeredDeliveries(r *result) float64 {
	d := r.Deliveries
	if d == nil || d.Acked == 0 {
		return 0
	}
	return r.OfferedRate * float64(d.Expected) / float64(d.Acked)
}

// deliveryCheck wants the target's rate at the target's size; a smaller run
// offers less, so there it must deliver what it offered (within 2 %).
func deliveryCheck(perSec, p99 float64) func(r *result) (string, bool) {
	return func(r *result) (string, bool) {
		l := deref(r.Latency)
		want := perSec
		if offered := offeredDeliveries(r); offered < perSec {
			want = offered * 0.98
		}
		return fmt.Sprintf("%.0f deliveries/s (%.0f offered), p99 %s ms, %s", r.DeliveriesPerSec, offeredDeliveries(r), ms(l.P99), lossText(r.Deliveries)),
			r.DeliveriesPerSec >= want && want > 0 && l.P99 <= p99 && noLoss(r.Deliveries)
	}
}

func offered(r *result) string {
	return fmt.Sprintf("%g msgs/s offered by %d senders", r.Params.Rate, r.Params.Senders)
}

func commitsCheck(want float64) func(r *result) (string, bool) {
	return func(r *result) (string, bool) {
		a := deref(r.Ack)
		return fmt.Sprintf("%.0f commits/s, ack p50 %s p99 %s ms", r.CommitsPerSec, ms(a.P50), ms(a.P99)),
			r.CommitsPerSec >= want*0.99 && a.P99 <= 20 && r.Deliveries != nil && r.Deliveries.Unacked == 0
	}
}

// runReport prints Markdown: per file of results, a table of every target
// next to what was measured.
func runReport(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report: give one or more files of JSON lines (-json output)")
	}
	for _, path := range fs.Args() {
		results, err := readResults(path)
		if err != nil {
			return err
		}
		writeReport(w, results)
	}
	return nil
}

func readResults(path string) ([]*result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r := new(result)
		if err := json.Unmarshal(sc.Bytes(), r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// judge compares a result with a target.
func judge(t target, r *result) (size, measured, status string) {
	at, size := t.atSize(r)
	measured, ok := t.checks(r)
	switch {
	case at && ok:
		status = "met"
	case at:
		status = "**not met**"
	case ok:
		status = "met at this size (smaller than the target's)"
	default:
		status = "**not met** even at this size"
	}
	if t.onlyFor != "" && r.Label != t.onlyFor {
		status = fmt.Sprintf("for comparison: the target is for %s (%s)", t.onlyFor, strings.ReplaceAll(status, "**", ""))
	}
	return size, measured, status
}

func writeReport(w io.Writer, results []*result) {
	if len(results) == 0 {
		return
	}
	label := results[0].Label
	if label == "" {
		label = "server"
	}
	fmt.Fprintf(w, "### %s\n\n", label)
	fmt.Fprintln(w, "| scenario | target | run | measured | status |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range results {
		matched := false
		for _, t := range targets {
			if t.scenario != r.Scenario || (t.label != "" && t.label != r.Label) || (t.applies != nil && !t.applies(r)) {
				continue
			}
			matched = true
			size, measured, status := judge(t, r)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Scenario, t.text, size, measured, status)
		}
		if !matched {
			fmt.Fprintf(w, "| %s | (no target for %s) | %d clients | %.0f deliveries/s, %.0f commits/s | - |\n",
				r.Scenario, label, r.Connections, r.DeliveriesPerSec, r.CommitsPerSec)
		}
	}
	fmt.Fprintln(w)
	for _, r := range results {
		var notes []string
		if r.Drops > 0 {
			notes = append(notes, fmt.Sprintf("%d connections dropped by the server (close codes: %s)", r.Drops, counts(r.Closes)))
		}
		for _, p := range r.Problems {
			notes = append(notes, strings.TrimSpace(p))
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "- %s: %s\n", r.Scenario, strings.Join(notes, "; "))
		}
	}
	fmt.Fprintln(w)
}
