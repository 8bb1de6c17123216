package main

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestNodeForClientSpreadsTheKilledNodesShare(t *testing.T) {
	const n, nodes, kill, share = 70, 3, 2, 50
	count := make([]int, nodes)
	for i := range n {
		node := nodeForClient(i, n, nodes, kill, share)
		if node < 0 || node >= nodes {
			t.Fatalf("client %d on node %d", i, node)
		}
		count[node]++
	}
	if count[kill] != share || count[0] != 10 || count[1] != 10 {
		t.Fatalf("clients per node %v, want 10, 10, %d", count, share)
	}
	// Every run of 5 consecutive clients (the smallest room) has members
	// on the killed node and off it.
	for i := 0; i+5 <= n; i++ {
		on := 0
		for j := i; j < i+5; j++ {
			if nodeForClient(j, n, nodes, kill, share) == kill {
				on++
			}
		}
		if on == 0 || on == 5 {
			t.Fatalf("clients %d-%d: %d of 5 on the killed node", i, i+4, on)
		}
	}
	for i := range 9 {
		if got := nodeForClient(i, 9, 3, -1, 0); got != i%3 {
			t.Fatalf("without a kill, client %d on node %d, want round-robin", i, got)
		}
	}
}

func TestFailoverFlags(t *testing.T) {
	base := []string{"-scenario", "failover", "-url", "http://127.0.0.1:8001", "-url", "http://127.0.0.1:8002", "-clients", "20"}
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"ok", []string{"-kill-pid", "4242"}, true},
		{"no pid", nil, false},
		{"first node", []string{"-kill-pid", "4242", "-kill-node", "1"}, false},
		{"no such node", []string{"-kill-pid", "4242", "-kill-node", "3"}, false},
		{"all on the killed node", []string{"-kill-pid", "4242", "-kill-clients", "20"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(append(append([]string{}, base...), tc.args...), discard{})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && cfg.killNode != 2 {
				t.Fatalf("kill node %d, want the last (2)", cfg.killNode)
			}
		})
	}
	if _, err := parseFlags([]string{"-scenario", "fanout", "-kill-pid", "4242"}, discard{}); err == nil {
		t.Fatal("-kill-pid outside failover accepted")
	}
	if _, err := parseFlags([]string{"-scenario", "failover", "-kill-pid", "4242"}, discard{}); err == nil {
		t.Fatal("failover with one node accepted")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// failoverNodes starts two fake nodes of one installation and makes the
// tool's kill end the second's connections and refuse new ones.
func failoverNodes(t *testing.T, s *fakeServer) (first, second string, killed *int) {
	h := s.handler()
	one, two := httptest.NewServer(h), httptest.NewServer(h)
	t.Cleanup(one.Close)
	t.Cleanup(two.Close)
	killed = new(int)
	old := killProcess
	killProcess = func(pid int) error {
		*killed = pid
		two.Listener.Close()
		u, _ := url.Parse(two.URL)
		s.kill(u.Host)
		return nil
	}
	t.Cleanup(func() { killProcess = old })
	return one.URL, two.URL, killed
}

func runFailover(t *testing.T, first, second string) *result {
	return mustRun(t, "-url", first, "-url", second, "-scenario", "failover", "-kill-pid", "4242", "-clients", "16", "-kill-clients", "10",
		"-room-size", "4", "-rate", "200", "-warmup", "1s", "-duration", "2s", "-drain", "5s", "-reconnect-jitter", "200ms")
}

func TestFailoverClientsMoveAndCatchUp(t *testing.T) {
	// The killed node's clients get what was sent while they were down by
	// their sync on the first node.
	s := &fakeServer{}
	first, second, killed := failoverNodes(t, s)
	res := runFailover(t, first, second)
	f := res.Failover
	if *killed != 4242 || f == nil || f.PID != 4242 || f.Node != second {
		t.Fatalf("killed %d; result %+v", *killed, f)
	}
	if f.Clients != 10 || f.Back != 10 || f.CaughtUp != 10 || f.Missing != 0 || f.MovedTo[first] != 10 || len(f.MovedTo) != 1 {
		t.Fatalf("failover: %+v", f)
	}
	if f.AllBackSeconds <= 0 || f.AllBackSeconds > 5 || f.AllCaughtUpSeconds < f.AllBackSeconds || f.CaughtUpEach.Count != 10 {
		t.Fatalf("times: %+v", f)
	}
	d := res.Deliveries
	if d.Lost != 0 || d.Duplicates != 0 || d.Reordered != 0 || d.Unacked != 0 || d.Acked < 100 {
		t.Fatalf("deliveries: %+v", d)
	}
	if res.Nodes == nil || res.Nodes.Nodes[1].Clients != 0 || res.Nodes.Nodes[0].Clients != 16 {
		t.Fatalf("nodes after the failover: %+v", res.Nodes)
	}
}

func TestFailoverSeesClientsNotCaughtUp(t *testing.T) {
	// The second node's connections get no live messages and sync replays
	// nothing: its clients come back on the first node without the
	// messages acknowledged before the kill.
	s := &fakeServer{noReplay: true}
	first, second, _ := failoverNodes(t, s)
	u, _ := url.Parse(second)
	s.starve = u.Host
	res := runFailover(t, first, second)
	f := res.Failover
	if f == nil || f.Back != 10 || f.CaughtUp != 0 || f.Missing == 0 {
		t.Fatalf("a server that lost the killed node's messages: %+v", f)
	}
	if res.Deliveries.Lost == 0 {
		t.Fatalf("no loss reported: %+v", res.Deliveries)
	}
}
