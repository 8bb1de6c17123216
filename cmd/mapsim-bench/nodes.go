package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// nodeStats counts, with several -url (nodes of one installation), the
// deliveries on each node's clients and the latency of deliveries whose
// sender was on another node: what the broker between nodes adds.
type nodeStats struct {
	deliveries []atomic.Int64 // in the measured window, by the receiver's node
	cross      hist           // send → delivery, sender and receiver on different nodes
	mu         sync.Mutex
	sender     map[[2]int]int // (room, seq) → the sender's node
	// Redis's CPU (user + sys seconds, from INFO) at the measured window's
	// start.
	redisCPU0 float64
	redisT0   time.Time
}

func newNodeStats(nodes int) *nodeStats {
	return &nodeStats{deliveries: make([]atomic.Int64, nodes), sender: map[[2]int]int{}}
}

func (n *nodeStats) sentFrom(room, seq, node int) {
	n.mu.Lock()
	n.sender[[2]int{room, seq}] = node
	n.mu.Unlock()
}

func (n *nodeStats) senderOf(room, seq int) (int, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	node, ok := n.sender[[2]int{room, seq}]
	return node, ok
}

// nodesResult is the per-node part of a result.
type nodesResult struct {
	Nodes           []nodeResult `json:"nodes"`
	CrossLatency    *summary     `json:"cross_node_latency,omitempty"`
	RedisCPUSeconds float64      `json:"redis_cpu_seconds,omitempty"`
	RedisCPUPercent float64      `json:"redis_cpu_percent,omitempty"`
}

type nodeResult struct {
	URL              string  `json:"url"`
	Clients          int     `json:"clients"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
}

// startNodes sets up the per-node counts (several -url only) and reads
// Redis's CPU at the start of the measured window.
func (b *bench) startNodes() {
	if len(b.cfg.nodes) < 2 {
		return
	}
	b.nodes = newNodeStats(len(b.cfg.nodes))
}

// markNodesWindow notes Redis's CPU as the measured window starts.
func (b *bench) markNodesWindow() {
	if b.nodes == nil || b.cfg.redisAddr == "" {
		return
	}
	if cpu, err := redisCPU(b.cfg.redisAddr); err == nil {
		b.nodes.redisCPU0, b.nodes.redisT0 = cpu, time.Now()
	}
}

func (b *bench) fillNodes(res *result, secs float64) {
	if b.nodes == nil {
		return
	}
	nr := &nodesResult{}
	for i, u := range b.cfg.nodes {
		clients := 0
		for _, c := range b.clients {
			if c.node == i {
				clients++
			}
		}
		nr.Nodes = append(nr.Nodes, nodeResult{URL: u.String(), Clients: clients, DeliveriesPerSec: round1(float64(b.nodes.deliveries[i].Load()) / secs)})
	}
	if b.nodes.cross.count() > 0 {
		s := b.nodes.cross.summary()
		nr.CrossLatency = &s
	}
	if b.cfg.redisAddr != "" && b.nodes.redisCPU0 > 0 {
		if cpu, err := redisCPU(b.cfg.redisAddr); err == nil {
			// Over the measured window and the drain after it.
			nr.RedisCPUSeconds = round3(cpu - b.nodes.redisCPU0)
			nr.RedisCPUPercent = round1(100 * nr.RedisCPUSeconds / time.Since(b.nodes.redisT0).Seconds())
		} else {
			res.Problems = append(res.Problems, "redis INFO: "+err.Error())
		}
	}
	res.Nodes = nr
}

// redisCPU reads used_cpu_user + used_cpu_sys from a Redis's INFO cpu.
func redisCPU(addr string) (float64, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("INFO cpu\r\n")); err != nil {
		return 0, err
	}
	rd := bufio.NewReader(conn)
	head, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("unexpected reply %q (%v)", head, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("unexpected length %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		return 0, err
	}
	total, found := 0.0, 0
	for _, line := range strings.Split(string(body), "\r\n") {
		for _, key := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return 0, fmt.Errorf("%s%q", key, v)
				}
				total += f
				found++
			}
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("INFO cpu has no used_cpu_user and used_cpu_sys")
	}
	return total, nil
}
