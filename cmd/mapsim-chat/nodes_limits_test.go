package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sendSpread sends n text frames for one user alternating over conns and
// returns how many were acknowledged; every other answer must be the rate
// limit's error, with its retry_after, as on one node.
func sendSpread(t *testing.T, conns []*wsClient, tag string, n int) (acked int) {
	t.Helper()
	for i := range n {
		c := conns[i%len(conns)]
		id := fmt.Sprintf("%s-%d", tag, i)
		c.send(map[string]any{"type": "text", "chat_name": "global", "client_id": id, "text": textMark + id})
		f := c.next(func(f map[string]any) bool {
			return f["client_id"] == id && (f["type"] == "ack" || f["type"] == "error")
		})
		switch {
		case f["type"] == "ack":
			acked++
		case f["code"] != "too_many":
			t.Fatalf("%s: frame %d refused with %v, want too_many", tag, i, f)
		default:
			if ra, _ := f["retry_after"].(float64); ra < 90 {
				t.Fatalf("%s: frame %d: retry_after %v, want about 100 s at 0.01/s", tag, i, f["retry_after"])
			}
		}
	}
	return acked
}

// TestNodesShareRateLimits: with Redis, a user's message and upload rates
// and an address's registrations are one budget over the nodes, answered
// as on one node (too_many with retry_after, 429 with Retry-After). With
// Redis killed each node limits on its own and nothing is refused for the
// outage; with Redis back the budgets are shared again.
func TestNodesShareRateLimits(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2,
		"RATE_LIMIT_MESSAGES_PER_SECOND", "0.01", "RATE_LIMIT_MESSAGES_BURST", "6",
		"UPLOAD_RATE_PER_MINUTE", "0.6", "UPLOAD_RATE_BURST", "3",
		"REGISTRATION_PER_HOUR", "5",
		// Generous for a test machine that other work loads (argon2id
		// hashing among it), so that no check falls back by accident.
		"REDIS_LIMIT_TIMEOUT", "1s")
	n0, n1 := c.node(0), c.node(1)
	nodes := []*nodeProc{n0, n1}
	// Three of the address's five registrations an hour, over both nodes.
	alice, bob := n0.MustUser(t, "alice"), n1.MustUser(t, "bob")
	carol := n0.MustUser(t, "carol")
	register := func(n *nodeProc, name string) apiResponse {
		return n.call(t, "POST", "/register/", "", map[string]string{"username": name, "password": testPassword})
	}
	for i, want := range []int{http.StatusCreated, http.StatusCreated, http.StatusTooManyRequests, http.StatusTooManyRequests} {
		r := register(nodes[i%2], fmt.Sprintf("newcomer%d", i))
		if r.Status != want {
			t.Fatalf("registration %d from one address (5 an hour, 3 made): %d %s, want %d", i+4, r.Status, r.Raw, want)
		}
		if want == http.StatusTooManyRequests {
			if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); s < 600 || s > 720 {
				t.Fatalf("registration refused with Retry-After %q, want about 720 s (an hour / 5)", r.Header.Get("Retry-After"))
			}
		}
	}

	// Messages: alice on both nodes gets one burst of 6, not 6 on each.
	dial := func(token string) []*wsClient {
		out := make([]*wsClient, 2)
		for i, n := range nodes {
			out[i] = n.MustDial(t, token, "global")
			out[i].nextType("hello")
		}
		return out
	}
	if got := sendSpread(t, dial(alice), "alice", 12); got != 6 {
		t.Fatalf("12 messages over two nodes: %d acknowledged, want the burst of 6", got)
	}

	// Uploads: a burst of 3 over both nodes.
	uploaded := 0
	for i := range 6 {
		r := nodes[i%2].upload(t, alice, "global", fmt.Sprintf("f%d.txt", i), "text/plain", strings.NewReader("hello"))
		switch r.Status {
		case http.StatusOK, http.StatusCreated:
			uploaded++
		case http.StatusTooManyRequests:
			if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); s < 90 {
				t.Fatalf("upload refused with Retry-After %q, want about 100 s", r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if uploaded != 3 {
		t.Fatalf("6 uploads over two nodes: %d stored, want the burst of 3", uploaded)
	}

	// Redis away: each node limits on its own, 6 each; every send answers.
	// (WebSocket tickets live in Redis: bob connects before it goes.)
	bobConns := dial(bob)
	c.redis.Kill()
	if got := sendSpread(t, bobConns, "bob", 14); got != 12 {
		t.Fatalf("Redis away: 14 messages over two nodes: %d acknowledged, want 6 on each node", got)
	}
	if r := register(n0, "outage0"); r.Status != http.StatusCreated {
		t.Fatalf("registration with Redis away: %d %s", r.Status, r.Raw)
	}
	for i, n := range nodes {
		if v := n.mustScrape(t).value("mapsim_rate_limit_fallbacks_total", "limit", "messages"); v < 1 {
			t.Fatalf("node %d: %v message checks counted as fallbacks with Redis away", i, v)
		}
	}

	// Redis back: the next checks find it (one a second tries) and the
	// budget is one again.
	c.redis.Restart()
	c.waitBroker("up") // a WebSocket opens again (tickets, presence)
	probe := dial(n0.MustLogin(t, "newcomer0", testPassword))
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		shared := 0
		for j, n := range nodes {
			id := fmt.Sprintf("probe-%d-%d", i, j)
			probe[j].send(map[string]any{"type": "text", "chat_name": "global", "client_id": id, "text": textMark + id})
			probe[j].next(func(f map[string]any) bool { return f["client_id"] == id })
			if n.mustScrape(t).value("mapsim_rate_limits_shared") == 1 {
				shared++
			}
		}
		if shared == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not share their limits again within 30 s of Redis's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sendSpread(t, dial(carol), "carol", 12); got != 6 {
		t.Fatalf("Redis back: 12 messages over two nodes: %d acknowledged, want the burst of 6", got)
	}
	for _, n := range nodes {
		if n := strings.Count(n.logs.String(), "rate limits: Redis did not answer"); n != 1 {
			t.Fatalf("the outage was logged %d times on a node, want once", n)
		}
	}
}
