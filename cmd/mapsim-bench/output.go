package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// result is one scenario's outcome: a line of the -json file and the
// source of the table.
type result struct {
	Scenario string  `json:"scenario"`
	Label    string  `json:"label,omitempty"` // what the runner calls this server, e.g. sqlite
	Started  string  `json:"started"`
	Seconds  float64 `json:"seconds"` // wall time of the whole scenario, setup included
	Params   params  `json:"params"`

	Connections    int     `json:"connections"` // connected at the start
	ConnectFailed  int     `json:"connect_failed"`
	ConnectSeconds float64 `json:"connect_seconds"` // to connect (and sync) them all
	Connect        summary `json:"connect"`         // ticket + WebSocket + hello (+ sync)
	Rooms          int     `json:"rooms"`

	OfferedRate      float64          `json:"offered_rate"` // msgs/s asked for (0: closed loop)
	SentRate         float64          `json:"sent_rate"`    // msgs/s actually sent
	Skipped          int64            `json:"skipped"`      // due but no sender could take them
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	CommitsPerSec    float64          `json:"commits_per_sec"`
	Deliveries       *delivery        `json:"deliveries,omitempty"`
	Latency          *summary         `json:"latency,omitempty"` // send → delivery, each receiver
	Ack              *summary         `json:"ack,omitempty"`     // send → ack
	DrainSeconds     float64          `json:"drain_seconds,omitempty"`
	Reconnect        *reconnectResult `json:"reconnect,omitempty"`
	Failover         *failoverResult  `json:"failover,omitempty"`
	History          *historyResult   `json:"history,omitempty"`

	Drops           int64            `json:"drops"` // connections the server ended unexpectedly
	Reconnects      int64            `json:"reconnects"`
	ReconnectFailed int64            `json:"reconnect_failed"`
	Resent          int64            `json:"resent"` // unacked messages resent after a reconnect
	ErrorFrames     map[string]int64 `json:"error_frames,omitempty"`
	Closes          map[string]int64 `json:"closes,omitempty"`
	OtherFrames     map[string]int64 `json:"other_frames,omitempty"` // presence, online_users…

	Nodes *nodesResult `json:"nodes,omitempty"` // with several -url

	Server   *serverResult `json:"server,omitempty"`
	Tool     toolResult    `json:"tool"`
	Problems []string      `json:"problems,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
}

type params struct {
	Clients     int     `json:"clients"`
	Users       int     `json:"users"`
	RoomSize    string  `json:"room_size,omitempty"`
	Rate        float64 `json:"rate"`
	Duration    float64 `json:"duration_s"`
	Warmup      float64 `json:"warmup_s"`
	Senders     int     `json:"senders,omitempty"`
	Inflight    int     `json:"inflight"`
	MsgBytes    int     `json:"msg_bytes"`
	SourceAddrs int     `json:"source_addrs"`
	Messages    int     `json:"messages,omitempty"`
	Queries     int     `json:"queries,omitempty"`
}

type reconnectResult struct {
	Clients        int     `json:"clients"`
	Back           int     `json:"back"`
	Failed         int     `json:"failed"`
	CutSeconds     float64 `json:"cut_seconds"`      // to close them all
	AllBackSeconds float64 `json:"all_back_seconds"` // cut → the last one back and synced
	PerClient      summary `json:"per_client"`       // down → back and synced, each
	Jitter         float64 `json:"jitter_s"`
	// From /debug/vars (-debug-url): just before the cut, and once all are
	// back and the messages drained.
	GoroutinesBefore int     `json:"goroutines_before,omitempty"`
	GoroutinesAfter  int     `json:"goroutines_after,omitempty"`
	HeapBeforeMiB    float64 `json:"heap_before_mib,omitempty"`
	HeapAfterMiB     float64 `json:"heap_after_mib,omitempty"`
}

type historyResult struct {
	Messages    int64   `json:"messages"` // committed by the fill
	FillSeconds float64 `json:"fill_seconds"`
	FillRate    float64 `json:"fill_rate"`
	PageSize    int     `json:"page_size"`
	pageTimes           // the measured pages (the JSON keeps newest, oldest, random at this level)
	Errors      int     `json:"errors"`
	BadPages    int     `json:"bad_pages"`
	// With -settle: the pages timed right after the fill, and how long
	// the machine took to go quiet before the measured ones above.
	AfterFill     *pageTimes `json:"after_fill,omitempty"`
	SettleSeconds float64    `json:"settle_seconds,omitempty"`
	Settled       bool       `json:"settled,omitempty"`
}

// pageTimes is a set of timed pages of each kind.
type pageTimes struct {
	Newest summary `json:"newest"`
	Oldest summary `json:"oldest"`
	Random summary `json:"random"`
}

type serverResult struct {
	PID              int     `json:"pid"`
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB      int64   `json:"rss_after_kib,omitempty"`
	RSSEndKiB        int64   `json:"rss_end_kib,omitempty"`
	RSSMaxKiB        int64   `json:"rss_max_kib"`
	RSSPerConnKiB    float64 `json:"rss_per_conn_kib,omitempty"`
	RSSPerConnEndKiB float64 `json:"rss_per_conn_end_kib,omitempty"`
	CPUPercent       float64 `json:"cpu_percent"` // of one core, over the measured window
	ThreadsBefore    int64   `json:"threads_before,omitempty"`
	ThreadsAfter     int64   `json:"threads"`
	FDs              int64   `json:"fds"`
	// Goroutines come from /debug/vars (-debug-url; per connection: the
	// growth over the baseline) or a SIGQUIT dump (-goroutine-dump; per
	// connection: those in hub code).
	Goroutines        *int    `json:"goroutines,omitempty"`
	HubGoroutines     *int    `json:"hub_goroutines,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	// From /debug/vars: the Go heap and goroutine stacks in use, per
	// connection, over the baseline.
	HeapPerConnKiB  float64 `json:"heap_per_conn_kib,omitempty"`
	StackPerConnKiB float64 `json:"stack_per_conn_kib,omitempty"`
	// From /debug/vars: frames written per write system call.
	FramesPerWrite float64 `json:"frames_per_write,omitempty"`
}

type toolResult struct {
	CPUPercent float64 `json:"cpu_percent"`
	RSSKiB     int64   `json:"rss_kib"`
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// appendJSONLine appends the result as one line to path.
func appendJSONLine(path string, res *result) error {
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func fmtSummary(s summary) string {
	if s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s ms  (n=%d)", ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), s.Count)
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func kib(v int64) string {
	if v >= 10*1024 {
		return fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// writeTable prints a result for people.
func writeTable(w io.Writer, res *result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	title := res.Scenario
	if res.Label != "" {
		title += " (" + res.Label + ")"
	}
	fmt.Fprintf(tw, "== %s ==\n", title)
	row("parameters", "%s", paramText(res))
	row("connected", "%d (%d failed) in %.1f s", res.Connections, res.ConnectFailed, res.ConnectSeconds)
	row("connect time", "%s", fmtSummary(res.Connect))
	if d := res.Deliveries; d != nil && res.Scenario != "history" && res.Scenario != "commits" {
		row("deliveries/s", "%.0f", res.DeliveriesPerSec)
		row("delivery latency", "%s", fmtSummary(deref(res.Latency)))
		if n := res.Nodes; n != nil {
			for _, node := range n.Nodes {
				row("  node "+node.URL, "%d clients, %.0f deliveries/s", node.Clients, node.DeliveriesPerSec)
			}
			row("cross-node latency", "%s", fmtSummary(deref(n.CrossLatency)))
			if n.RedisCPUSeconds > 0 {
				row("redis cpu", "%.2f s over the measured time (%.0f%% of a core)", n.RedisCPUSeconds, n.RedisCPUPercent)
			}
		}
		row("expected / received", "%d / %d unique (%d frames)", d.Expected, d.Unique, d.Received)
		row("lost / duplicates", "%d lost (%d messages), %d duplicates, %d reordered, %d delivered unacked", d.Lost, d.LostMessages, d.Duplicates, d.Reordered, d.Unexpected)
	}
	if d := res.Deliveries; d != nil {
		row("messages", "%d sent, %d acked, %d refused, %d unacked; %d skipped (no sender free)", d.Messages, d.Acked, d.Rejected, d.Unacked, res.Skipped)
		if res.OfferedRate > 0 {
			row("send rate", "%.0f msgs/s offered, %.0f sent", res.OfferedRate, res.SentRate)
		} else {
			row("send rate", "closed loop (%d in flight per sender), %.0f sent", res.Params.Inflight, res.SentRate)
		}
		row("commits/s", "%.0f", res.CommitsPerSec)
		row("ack latency", "%s", fmtSummary(deref(res.Ack)))
	}
	if r := res.Reconnect; r != nil {
		row("reconnect storm", "%d cut in %.2f s; %d back and synced (%d failed); last one %.2f s after the cut (jitter %gs)", r.Clients, r.CutSeconds, r.Back, r.Failed, r.AllBackSeconds, r.Jitter)
		row("reconnect each", "%s", fmtSummary(r.PerClient))
		if r.GoroutinesBefore != 0 {
			row("server after the storm", "goroutines %d before the cut, %d after; Go heap %.1f MiB before, %.1f MiB after",
				r.GoroutinesBefore, r.GoroutinesAfter, r.HeapBeforeMiB, r.HeapAfterMiB)
		}
	}
	if f := res.Failover; f != nil {
		row("failover", "kill -9 %d (%s) with %d clients; %d back on the others (%d gave up), the last %.2f s after the kill (jitter %gs)",
			f.PID, f.Node, f.Clients, f.Back, f.Clients-f.Back, f.AllBackSeconds, f.Jitter)
		row("caught up", "%d with every message acked before the kill, the last %.2f s after it; %d deliveries still missing",
			f.CaughtUp, f.AllCaughtUpSeconds, f.Missing)
		row("back each", "%s", fmtSummary(f.BackEach))
		row("caught up each", "%s", fmtSummary(f.CaughtUpEach))
		row("moved to", "%s", counts(intCounts(f.MovedTo)))
	}
	if h := res.History; h != nil {
		row("history fill", "%d messages in %.1f s (%.0f commits/s)", h.Messages, h.FillSeconds, h.FillRate)
		row("ack latency (fill)", "%s", fmtSummary(deref(res.Ack)))
		if a := h.AfterFill; a != nil {
			row("right after the fill", "p99 newest %s, oldest %s, random %s ms (p50 %s, %s, %s)",
				ms(a.Newest.P99), ms(a.Oldest.P99), ms(a.Random.P99), ms(a.Newest.P50), ms(a.Oldest.P50), ms(a.Random.P50))
			if h.Settled {
				row("then", "the machine was quiet after %.1f s; the pages below were timed then", h.SettleSeconds)
			} else {
				row("then", "the machine was NOT quiet within %.1f s; the pages below were timed anyway", h.SettleSeconds)
			}
		}
		row(fmt.Sprintf("newest page of %d", h.PageSize), "%s", fmtSummary(h.Newest))
		row("oldest page", "%s", fmtSummary(h.Oldest))
		row("random page", "%s", fmtSummary(h.Random))
		row("page errors", "%d failed, %d not a full ascending page", h.Errors, h.BadPages)
	}
	if s := res.Server; s != nil {
		if s.RSSPerConnKiB != 0 || s.RSSAfterKiB != 0 {
			row("server RSS", "%s before, %s with the connections, %s at the end: %.1f KiB/conn (%.1f at the end)",
				kib(s.RSSBeforeKiB), kib(s.RSSAfterKiB), kib(s.RSSEndKiB), s.RSSPerConnKiB, s.RSSPerConnEndKiB)
		} else {
			row("server RSS", "%s at the end, %s max", kib(s.RSSEndKiB), kib(s.RSSMaxKiB))
		}
		row("server CPU", "%.0f %% of a core; %d threads, %d fds", s.CPUPercent, s.ThreadsAfter, s.FDs)
		switch {
		case s.Goroutines != nil && s.HubGoroutines != nil:
			row("server goroutines", "%d in all, %d in hub code: %.2f per connection", *s.Goroutines, *s.HubGoroutines, s.GoroutinesPerConn)
		case s.Goroutines != nil:
			row("server goroutines", "%d in all: %.2f per connection", *s.Goroutines, s.GoroutinesPerConn)
		case res.Scenario == "idle":
			row("server goroutines", "not measured (give -debug-url, or -goroutine-dump at the cost of the server)")
		}
		if s.HeapPerConnKiB != 0 || s.StackPerConnKiB != 0 {
			row("server Go memory", "%.1f KiB heap + %.1f KiB stacks per connection (in use, over the baseline)", s.HeapPerConnKiB, s.StackPerConnKiB)
		}
		if s.FramesPerWrite != 0 {
			row("frames per write", "%.2f", s.FramesPerWrite)
		}
	}
	row("tool", "%.0f %% of a core, %s", res.Tool.CPUPercent, kib(res.Tool.RSSKiB))
	row("drops / reconnects", "%d dropped, %d reconnected, %d gave up; %d resent", res.Drops, res.Reconnects, res.ReconnectFailed, res.Resent)
	row("close codes", "%s", counts(res.Closes))
	row("error frames", "%s", counts(res.ErrorFrames))
	row("other frames", "%s", counts(res.OtherFrames))
	for _, p := range res.Problems {
		row("PROBLEM", "%s", p)
	}
	for _, n := range res.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}

// paramText describes a run's size in the terms of its scenario.
func paramText(res *result) string {
	p := res.Params
	users := ""
	if p.Users != p.Clients {
		users = fmt.Sprintf(" (%d users)", p.Users)
	}
	src := fmt.Sprintf("%d source addresses", p.SourceAddrs)
	switch res.Scenario {
	case "idle":
		return fmt.Sprintf("%d connections%s held %gs, %s", p.Clients, users, p.Duration, src)
	case "commits", "history":
		what := fmt.Sprintf("%d senders, %d in flight each, rate %s, %d B", p.Senders, p.Inflight, rateString(p.Rate), p.MsgBytes)
		if res.Scenario == "history" {
			return fmt.Sprintf("%s; fill %d messages (at most %gs), %d pages of each kind; %s", what, p.Messages, p.Duration, p.Queries, src)
		}
		return fmt.Sprintf("%s; %gs (+%gs warm-up); %s", what, p.Duration, p.Warmup, src)
	}
	senders := "every member sends"
	if res.Scenario == "fanout" {
		senders = fmt.Sprintf("%d senders", p.Senders)
	}
	return fmt.Sprintf("%d clients%s in %d rooms of %s, %s, %s, %gs (+%gs warm-up), in-flight %d, %d B, %s",
		p.Clients, users, res.Rooms, p.RoomSize, senders, rateString(p.Rate), p.Duration, p.Warmup, p.Inflight, p.MsgBytes, src)
}

func intCounts(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

func deref(s *summary) summary {
	if s == nil {
		return summary{}
	}
	return *s
}
