package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/testutil/mariadbtest"
	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
)

// The tests of several nodes: server processes (the test binary running
// main) sharing one MariaDB database and one redis-server, all on loopback.

// cluster is the nodes, their Redis and their shared settings.
type cluster struct {
	t     *testing.T
	redis *redistest.Server
	env   map[string]string
	mu    sync.Mutex
	nodes []*nodeProc
}

// nodeProc is one server process.
type nodeProc struct {
	*testServer // the API helpers, against this node
	cmd         *exec.Cmd
	exited      chan struct{}
	logs        *syncBuffer
	dead        atomic.Bool
}

func startCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	o := mariadbtest.Options(t)
	rd := redistest.Start(t)
	env := withoutRateLimits(baseEnv(t, map[string]string{
		"DB_HOST": o.Host, "DB_PORT": o.Port, "DB_NAME": o.Name, "DB_USER": o.User,
		"REDIS_URL": rd.URL(), "REDIS_PREFIX": "test-" + o.Name + ":",
	}))
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	c := &cluster{t: t, redis: rd, env: env}
	for range n {
		c.add()
	}
	return c
}

// add starts one more node and waits until it listens.
func (c *cluster) add() *nodeProc {
	c.t.Helper()
	t := c.t
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = []string{"MAPSIM_CHAT_AS_MAIN=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = t.TempDir() // no .env there
	stdout, logs := &syncBuffer{listening: make(chan string, 1)}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{cmd: cmd, exited: make(chan struct{}), logs: logs}
	go func() { cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("node %s logs (tail):\n%s", n.URL, tailString(logs.String(), 4000))
		}
	})
	select {
	case u := <-stdout.listening:
		n.testServer = &testServer{tb: t, URL: u, env: c.env, client: http.DefaultClient}
	case <-n.exited:
		t.Fatalf("a node exited at start:\n%s", logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("a node did not listen within 90 s:\n%s", logs.String())
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// node returns the i-th node started.
func (c *cluster) node(i int) *nodeProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// urls returns the URLs of the nodes, the killed ones included (a client
// finds out by failing to connect, as it would behind a balancer).
func (c *cluster) urls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.URL
	}
	return out
}

// kill9 ends a node with SIGKILL.
func (n *nodeProc) kill9() {
	n.dead.Store(true)
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// brokerState reads /readyz's broker field.
func (n *nodeProc) brokerState(t *testing.T) string {
	r := n.call(t, "GET", "/readyz", "", nil)
	return r.str("broker")
}

// waitBroker waits until every live node's /readyz says the broker is in
// state.
func (c *cluster) waitBroker(state string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range c.urls() {
		c.mu.Lock()
		var n *nodeProc
		for _, x := range c.nodes {
			if x.URL == u {
				n = x
			}
		}
		c.mu.Unlock()
		if n.dead.Load() {
			continue
		}
		for n.brokerState(c.t) != state {
			if time.Now().After(deadline) {
				c.t.Fatalf("node %s: broker %q, want %q within 30 s", u, n.brokerState(c.t), state)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// textMark starts every text the tests of several nodes send.
const textMark = "·"

// isSequenced reports whether a frame type takes an id in a chat's
// sequence.
func isSequenced(typ string) bool {
	switch typ {
	case "text", "file", "system", "edit", "delete":
		return true
	}
	return false
}

// member is a resuming client, like the web client: it connects to its
// preferred node or, failing that, the next one, syncs each of its chats
// from the last id it holds, and records every sequenced frame. It
// reconnects whenever the connection ends, until stopped.
type member struct {
	t     *testing.T
	name  string
	token string
	urls  func() []string
	pref  int
	dial  *websocket.DialOptions // nil for the defaults

	mu       sync.Mutex
	last     map[string]int64   // chat name → last id held
	ids      map[string][]int64 // chat name → ids in the order received
	problems []string
	conn     *websocket.Conn
	connects int
	node     string         // URL of the current connection
	types    map[string]int // frames received, by type
	// other frames (acks, typing, chat_added…), for tests that wait on them
	events chan map[string]any
	synced chan string // chat names as their sync completes
	stop   context.CancelFunc
	done   chan struct{}
}

func newMember(t *testing.T, name, token string, urls func() []string, pref int, chats map[string]int64) *member {
	return newMemberVia(t, name, token, urls, pref, nil, chats)
}

func newMemberVia(t *testing.T, name, token string, urls func() []string, pref int, dial *websocket.DialOptions, chats map[string]int64) *member {
	m := &member{
		t: t, name: name, token: token, urls: urls, pref: pref, dial: dial,
		last: map[string]int64{}, ids: map[string][]int64{}, types: map[string]int{},
		events: make(chan map[string]any, 100000), synced: make(chan string, 1000), done: make(chan struct{}),
	}
	for k, v := range chats {
		m.last[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go m.run(ctx)
	t.Cleanup(m.close)
	return m
}

func (m *member) close() {
	m.stop()
	<-m.done
}

func (m *member) run(ctx context.Context) {
	defer close(m.done)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		urls := m.urls()
		u := urls[(m.pref+attempt)%len(urls)]
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(u, "http")+"/ws?resume=1&token="+url.QueryEscape(m.token), m.dial)
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		attempt = -1 // back to the preferred node next time
		conn.SetReadLimit(1 << 20)
		m.mu.Lock()
		m.conn, m.node = conn, u
		m.connects++
		chats := make(map[string]int64, len(m.last))
		for k, v := range m.last {
			chats[k] = v
		}
		m.mu.Unlock()
		for name, after := range chats {
			m.write(conn, map[string]any{"type": "sync", "chat_name": name, "after_id": after})
		}
		m.read(ctx, conn)
		conn.CloseNow()
		m.mu.Lock()
		m.conn = nil
		m.mu.Unlock()
	}
}

func (m *member) write(conn *websocket.Conn, v any) error {
	data, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, data)
}

func (m *member) read(ctx context.Context, conn *websocket.Conn) {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var f map[string]any
		json.Unmarshal(data, &f)
		typ, _ := f["type"].(string)
		name, _ := f["chat_name"].(string)
		m.mu.Lock()
		m.types[typ]++
		m.mu.Unlock()
		switch {
		case isSequenced(typ):
			id := num(f, "id")
			m.mu.Lock()
			last, known := m.last[name]
			switch {
			case !known:
				m.problems = append(m.problems, fmt.Sprintf("%s frame %d of chat %s, which was never synced", typ, id, name))
			case id <= last:
				m.problems = append(m.problems, fmt.Sprintf("chat %s: id %d after %d (duplicate or out of order)", name, id, last))
			case typ == "text" && !strings.HasPrefix(fmt.Sprint(f["text"]), textMark):
				// Every test text starts with the mark: a body another
				// node sealed must open here too.
				m.problems = append(m.problems, fmt.Sprintf("chat %s: message %d arrived as %q", name, id, f["text"]))
			default:
				m.ids[name] = append(m.ids[name], id)
				m.last[name] = id
			}
			m.mu.Unlock()
		case typ == "chat_added":
			c, _ := f["chat"].(map[string]any)
			cname, _ := c["name"].(string)
			from := num(c, "last_message_id")
			m.mu.Lock()
			if _, known := m.last[cname]; !known {
				m.last[cname] = from
			}
			after := m.last[cname]
			m.mu.Unlock()
			m.write(conn, map[string]any{"type": "sync", "chat_name": cname, "after_id": after})
		case typ == "synced":
			select {
			case m.synced <- name:
			default:
			}
		}
		select {
		case m.events <- f:
		default:
		}
	}
}

// send writes a frame on the current connection; false when there is none.
func (m *member) send(v any) bool {
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	return conn != nil && m.write(conn, v) == nil
}

// mustSend sends, waiting up to 15 s for a connection.
func (m *member) mustSend(v any) {
	m.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !m.send(v) {
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: no connection to send on", m.name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextEvent waits for a frame that matches.
func (m *member) nextEvent(what string, match func(map[string]any) bool) map[string]any {
	m.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case f := <-m.events:
			if match(f) {
				return f
			}
		case <-deadline:
			m.t.Fatalf("%s: no %s within 20 s", m.name, what)
			return nil
		}
	}
}

// held returns the ids the member holds of a chat.
func (m *member) held(chatName string) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.ids[chatName])
}

// waitHolds waits until the member holds every id of want (and fails on
// anything else or any problem): exactly once, in id order.
func (m *member) waitHolds(chatName string, want []int64, within time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := m.held(chatName)
		m.mu.Lock()
		problems := slices.Clone(m.problems)
		m.mu.Unlock()
		if len(problems) > 0 {
			m.t.Fatalf("%s: %d problems, first: %s", m.name, len(problems), problems[0])
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			missing, extra := diffIDs(want, got)
			m.t.Fatalf("%s holds %d ids of %s, want %d; missing %v, unexpected %v", m.name, len(got), chatName, len(want), head(missing), head(extra))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mustGroup creates a group through a node and returns its name and the
// id to sync it from.
func mustGroup(t *testing.T, n *nodeProc, owner, title string, members ...string) (string, int64) {
	t.Helper()
	r := n.call(t, "POST", "/chats/", owner, map[string]any{"e2ee": false, "kind": "group", "title": title, "members": members})
	if r.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", r.Status, r.Raw)
	}
	start := int64(0)
	if v, ok := r.Body["last_message_id"].(float64); ok {
		start = int64(v)
	}
	return r.str("name"), start
}

// sendAcked sends one text message through a member and returns its id.
// It sends again, with the same client id, while no ack comes (the frame
// may have gone down with a node).
func (m *member) sendAcked(chatName, clientID, text string) int64 {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m.mustSend(map[string]any{"type": "text", "chat_name": chatName, "client_id": clientID, "text": textMark + text})
		wait := time.After(3 * time.Second)
		for {
			select {
			case f := <-m.events:
				if f["type"] == "ack" && f["client_id"] == clientID {
					return num(f, "id")
				}
				continue
			case <-wait:
			}
			break
		}
	}
	m.t.Fatalf("%s: no ack of %s within 30 s", m.name, clientID)
	return 0
}

// TestNodesShareChats: three nodes behave as one server. Messages, edits
// and deletes sent on any node reach the members on every node, in id
// order, once; typing crosses nodes; a member added on one node while
// connected to another gets the chat and its messages, and one removed
// stops getting them; /readyz reports the broker.
func TestNodesShareChats(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	n0, n1, n2 := c.node(0), c.node(1), c.node(2)
	alice, bob, carol, dave := n0.MustUser(t, "alice"), n1.MustUser(t, "bob"), n2.MustUser(t, "carol"), n2.MustUser(t, "dave")
	group, start := mustGroup(t, n0, alice, "Across", "bob", "carol")
	chats := map[string]int64{group: start}
	a := newMember(t, "alice", alice, c.urls, 0, chats)
	b := newMember(t, "bob", bob, c.urls, 1, chats)
	cm := newMember(t, "carol", carol, c.urls, 2, chats)
	d := newMember(t, "dave", dave, c.urls, 2, nil)
	for _, m := range []*member{a, b, cm} {
		m.nextEvent("synced", func(f map[string]any) bool { return f["type"] == "synced" })
	}
	d.nextEvent("hello", func(f map[string]any) bool { return f["type"] == "hello" })
	for i, n := range []*nodeProc{n0, n1, n2} {
		if got := n.brokerState(t); got != "up" {
			t.Fatalf("node %d: /readyz broker %q, want up", i, got)
		}
	}

	var want []int64
	want = append(want, a.sendAcked(group, "a1", "from node 0"))
	want = append(want, b.sendAcked(group, "b1", "from node 1"))
	want = append(want, cm.sendAcked(group, "c1", "from node 2"))
	slices.Sort(want)
	for _, m := range []*member{a, b, cm} {
		m.waitHolds(group, want, 20*time.Second)
	}

	// Edit on node 1 and delete on node 2 reach everyone.
	b.mustSend(map[string]any{"type": "edit", "chat_name": group, "client_id": "b1-edit", "message_id": want[1], "text": textMark + "edited on node 1"})
	want = append(want, num(b.nextEvent("edit ack", func(f map[string]any) bool { return f["type"] == "ack" && f["client_id"] == "b1-edit" }), "id"))
	cm.mustSend(map[string]any{"type": "delete", "chat_name": group, "client_id": "c1-del", "message_id": want[2]})
	want = append(want, num(cm.nextEvent("delete ack", func(f map[string]any) bool { return f["type"] == "ack" && f["client_id"] == "c1-del" }), "id"))
	for _, m := range []*member{a, b, cm} {
		m.waitHolds(group, want, 20*time.Second)
	}
	edit := a.nextEvent("the edit", func(f map[string]any) bool { return f["type"] == "edit" })
	if edit["text"] != textMark+"edited on node 1" || num(edit, "message_id") != want[1] {
		t.Fatalf("node 0 got the edit as %v", edit)
	}

	// Typing on node 0 shows on nodes 1 and 2.
	a.mustSend(map[string]any{"type": "typing", "chat_name": group})
	for _, m := range []*member{b, cm} {
		m.nextEvent("typing", func(f map[string]any) bool { return f["type"] == "typing" && f["username"] == "alice" })
	}

	// A read marker made on node 1 reaches Bob's other connection, on node
	// 2 (it travels on the chat's shard), and nobody else.
	b2 := newMember(t, "bob", bob, c.urls, 2, chats)
	b2.nextEvent("synced", func(f map[string]any) bool { return f["type"] == "synced" })
	b.mustSend(map[string]any{"type": "read", "chat_name": group, "message_id": want[1]})
	for _, m := range []*member{b, b2} {
		m.nextEvent("bob's read marker", func(f map[string]any) bool { return f["type"] == "read" && num(f, "last_read_id") == want[1] })
	}

	// Dave, on node 2, is added on node 0: he gets the chat and syncs it,
	// then live messages.
	if r := n0.call(t, "POST", "/chats/"+group+"/members", alice, map[string]any{"members": []string{"dave"}}); r.Status != http.StatusOK {
		t.Fatalf("add dave: %d %s", r.Status, r.Raw)
	}
	d.nextEvent("chat_added", func(f map[string]any) bool { return f["type"] == "chat_added" })
	added := b.nextEvent("the system message", func(f map[string]any) bool { return f["type"] == "system" })
	want = append(want, num(added, "id"))
	want = append(want, a.sendAcked(group, "a2", "welcome dave"))
	for _, m := range []*member{a, b, cm} {
		m.waitHolds(group, want, 20*time.Second)
	}
	d.waitHolds(group, want[len(want)-2:], 20*time.Second)

	// Carol, on node 2, is removed on node 0: she hears of it and gets
	// nothing after.
	if r := n0.call(t, "DELETE", "/chats/"+group+"/members/carol", alice, nil); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
	}
	cm.nextEvent("chat_removed", func(f map[string]any) bool { return f["type"] == "chat_removed" })
	removed := b.nextEvent("the system message", func(f map[string]any) bool { return f["type"] == "system" })
	want = append(want, num(removed, "id"))
	carolHas := append(slices.Clone(want), 0)[:len(want)]
	want = append(want, b.sendAcked(group, "b2", "after carol"))
	for _, m := range []*member{a, b} {
		m.waitHolds(group, want, 20*time.Second)
	}
	d.waitHolds(group, want[len(want)-4:], 20*time.Second)
	if got := cm.held(group); !slices.Equal(got, carolHas) {
		t.Fatalf("carol holds %v, want %v (nothing after her removal)", got, carolHas)
	}
	for _, m := range []*member{a, cm, d} {
		m.mu.Lock()
		n := m.types["read"]
		m.mu.Unlock()
		if n != 0 {
			t.Fatalf("%s got %d read markers, all of them bob's", m.name, n)
		}
	}
}

// nodesLoad is a group under load across the nodes: a sender per node
// (each keeping a window of unacknowledged messages, resending them with
// the same client ids after any reconnect, to the next node if its own is
// gone) and receivers spread over the nodes.
type nodesLoad struct {
	c         *cluster
	group     string
	start     int64
	lateToken string
	receivers []*member
	ackMu     sync.Mutex
	acked     []int64
	total     atomic.Int64
	errs      chan error
	wg        sync.WaitGroup
}

func startNodesLoad(t *testing.T, c *cluster, receiversPerNode, perSender int) *nodesLoad {
	t.Helper()
	n0 := c.node(0)
	nodes := len(c.urls())
	owner := n0.MustUser(t, "owner")
	var names, senders []string
	for i := range nodes {
		senders = append(senders, c.node(i).MustUser(t, fmt.Sprintf("sender%d", i)))
		names = append(names, fmt.Sprintf("sender%d", i))
	}
	var receiverTokens []string
	for i := range receiversPerNode * nodes {
		receiverTokens = append(receiverTokens, c.node(i%nodes).MustUser(t, fmt.Sprintf("receiver%d", i)))
		names = append(names, fmt.Sprintf("receiver%d", i))
	}
	// late joins the group now, and connects in a test that starts a node
	// later.
	lateToken := n0.MustUser(t, "late")
	names = append(names, "late")
	group, start := mustGroup(t, n0, owner, "Load", names...)
	l := &nodesLoad{c: c, group: group, start: start, lateToken: lateToken, errs: make(chan error, nodes)}
	for i, tok := range receiverTokens {
		l.receivers = append(l.receivers, newMember(t, fmt.Sprintf("receiver%d", i), tok, c.urls, i%nodes, map[string]int64{group: start}))
	}
	for _, r := range l.receivers {
		r.nextEvent("synced", func(f map[string]any) bool { return f["type"] == "synced" })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	for i, tok := range senders {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := l.send(ctx, tok, i, perSender); err != nil {
				l.errs <- fmt.Errorf("sender %d: %w", i, err)
			}
		}()
	}
	return l
}

// waitAcked waits until n messages are acknowledged in all.
func (l *nodesLoad) waitAcked(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for l.total.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages acknowledged within 2 min, want %d", l.total.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish waits for the senders and then for every receiver to hold every
// acknowledged message, once, in order.
func (l *nodesLoad) finish(t *testing.T, extra ...*member) []int64 {
	t.Helper()
	l.wg.Wait()
	close(l.errs)
	for err := range l.errs {
		t.Fatal(err)
	}
	l.ackMu.Lock()
	want := slices.Clone(l.acked)
	l.ackMu.Unlock()
	slices.Sort(want)
	if len(slices.Compact(slices.Clone(want))) != len(want) {
		t.Fatal("two acks carried the same id")
	}
	for _, r := range append(slices.Clone(l.receivers), extra...) {
		r.waitHolds(l.group, want, time.Minute)
	}
	return want
}

func (l *nodesLoad) send(ctx context.Context, token string, n, count int) error {
	const window = 32
	unacked := map[string][]byte{}
	next := 0
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if next == count && len(unacked) == 0 {
			return nil
		}
		urls := l.c.urls()
		u := urls[(n+attempt)%len(urls)]
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(u, "http")+"/ws?token="+url.QueryEscape(token), nil)
		cancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		attempt = -1
		conn.SetReadLimit(1 << 20)
		ok := true
		write := func(frame []byte) bool { return conn.Write(ctx, websocket.MessageText, frame) == nil }
		for _, frame := range unacked {
			if ok = write(frame); !ok {
				break
			}
		}
		for ok {
			for len(unacked) < window && next < count {
				id := fmt.Sprintf("s%d-m%d", n, next)
				frame, _ := json.Marshal(map[string]any{"type": "text", "chat_name": l.group, "client_id": id, "text": textMark + id + " " + strings.Repeat("x", 200)})
				unacked[id] = frame
				next++
				if ok = write(frame); !ok {
					break
				}
			}
			if !ok {
				break
			}
			if next == count && len(unacked) == 0 {
				conn.Close(websocket.StatusNormalClosure, "")
				return nil
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, data, err := conn.Read(rctx)
			cancel()
			if err != nil {
				break
			}
			var f struct {
				Type     string `json:"type"`
				ID       int64  `json:"id"`
				ClientID string `json:"client_id"`
				Code     string `json:"code"`
				Detail   string `json:"detail"`
			}
			json.Unmarshal(data, &f)
			switch f.Type {
			case "ack":
				if _, mine := unacked[f.ClientID]; !mine {
					continue
				}
				delete(unacked, f.ClientID)
				l.ackMu.Lock()
				l.acked = append(l.acked, f.ID)
				l.ackMu.Unlock()
				l.total.Add(1)
			case "error":
				if f.Code != "unavailable" {
					return fmt.Errorf("error frame for %s: %s %s", f.ClientID, f.Code, f.Detail)
				}
				if frame, pending := unacked[f.ClientID]; pending {
					ok = write(frame)
				}
			}
		}
		conn.CloseNow()
	}
	return ctx.Err()
}

// TestNodesSurviveRedisRestart: redis-server is killed under load and
// started again. Meanwhile sends still commit and the nodes say so on
// /readyz; when it is back each node resubscribes and fills from the
// database, and every receiver, on every node, ends up with every
// acknowledged message exactly once, in id order.
func TestNodesSurviveRedisRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const perSender = 400
	l := startNodesLoad(t, c, 2, perSender)
	l.waitAcked(t, perSender*3/4)
	c.redis.Kill()
	c.waitBroker("down")
	before := l.total.Load()
	l.waitAcked(t, before+perSender) // sends commit while Redis is away
	// Their publishes fail (a short outage may find a publish still
	// waiting on its connection: wait for it to give up, not a set time).
	for deadline := time.Now().Add(30 * time.Second); ; {
		failed := 0.0
		for i := range 3 {
			failed += c.node(i).mustScrape(t).value("mapsim_broker_publish_errors_total")
		}
		if failed >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis away: no node failed a publish within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	down := c.node(0).mustScrape(t)
	c.redis.Restart()
	c.waitBroker("up")
	want := l.finish(t)

	// /metrics tells the story: the broker was down and came back, it
	// failed to publish meanwhile, and the nodes filled from the database.
	if v := down.value("mapsim_broker_up"); v != 0 {
		t.Errorf("mapsim_broker_up = %v while Redis was away, want 0", v)
	}
	var replayed, failed float64
	for i := range 3 {
		sc := c.node(i).mustScrape(t)
		for _, name := range brokerFamilies {
			if sc[name] == nil {
				t.Errorf("node %d: family %s is missing", i, name)
			}
		}
		if sc.value("mapsim_broker_up") != 1 || sc.value("mapsim_broker_reconnects_total") < 1 ||
			sc.value("mapsim_broker_publish_duration_seconds") < 1 || sc.value("mapsim_broker_events_published_total") < 1 {
			t.Errorf("node %d: up %v, reconnects %v, publish pipelines %v, published %v", i, sc.value("mapsim_broker_up"),
				sc.value("mapsim_broker_reconnects_total"), sc.value("mapsim_broker_publish_duration_seconds"),
				sc.value("mapsim_broker_events_published_total"))
		}
		replayed += sc.value("mapsim_broker_events_replayed_total")
		failed += sc.value("mapsim_broker_publish_errors_total")
	}
	if replayed < 1 || failed < 1 {
		t.Errorf("events replayed from the database %v, failed publishes %v; want both after Redis was away", replayed, failed)
	}
	reconnects := 0
	for _, r := range l.receivers {
		r.mu.Lock()
		reconnects += r.connects - 1
		r.mu.Unlock()
	}
	t.Logf("%d messages; the receivers reconnected %d times in all", len(want), reconnects)
}

// TestNodesSurviveKill9: one of three nodes is killed with SIGKILL under
// load. Its clients reconnect to the others and catch up; a node started
// afterwards serves a client that catches up from the start; every
// receiver holds every acknowledged message exactly once, in id order.
func TestNodesSurviveKill9(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const perSender = 400
	l := startNodesLoad(t, c, 2, perSender)
	l.waitAcked(t, perSender)
	c.node(2).kill9()
	l.waitAcked(t, perSender*2)
	late := c.add()
	lm := newMember(t, "late", l.lateToken, func() []string { return []string{late.URL} }, 0, map[string]int64{l.group: l.start})
	l.finish(t, lm)
	for _, r := range l.receivers[2:] {
		r.mu.Lock()
		node := r.node
		r.mu.Unlock()
		if node == c.node(2).URL {
			t.Fatalf("%s is still on the killed node", r.name)
		}
	}
}

// TestNodesShareSessions: a WebSocket ticket asked for on one node opens a
// socket on another, once; a logout on one node closes the session's
// sockets on the others within about a second.
func TestNodesShareSessions(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	n0, n1, n2 := c.node(0), c.node(1), c.node(2)
	erin := n0.MustUser(t, "erin")
	r := n0.call(t, "POST", "/ws-ticket/", erin, nil)
	if r.Status != http.StatusOK || r.str("ticket") == "" {
		t.Fatalf("ws-ticket: %d %s", r.Status, r.Raw)
	}
	ticket := r.str("ticket")
	ws, err := n1.dial(t, "ticket="+url.QueryEscape(ticket), nil)
	if err != nil {
		t.Fatalf("a ticket from node 0 did not open a socket on node 1: %v", err)
	}
	ws.nextType("hello")
	if _, err := n2.dial(t, "ticket="+url.QueryEscape(ticket), nil); err == nil {
		t.Fatal("a used ticket opened a second socket on node 2")
	}
	other := n2.MustDial(t, erin, "global")
	other.nextType("hello")

	// Logout on node 0: both sockets, on nodes 1 and 2, close.
	start := time.Now()
	if r := n0.call(t, "POST", "/logout/", erin, nil); r.Status != http.StatusOK && r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Raw)
	}
	for i, s := range []*wsClient{ws, other} {
		if code := s.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("socket %d closed with %d, want 1008", i, code)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the sockets closed %v after the logout", d)
	}
	t.Logf("both sockets closed %v after the logout on another node", time.Since(start).Round(time.Millisecond))
}

// TestNodesSharePresence: who is online is one answer on every node. A
// user online on one node shows online to people on the others (the
// presence frame, the online_users list a new connection gets, and GET
// /users/online); a user who leaves goes offline everywhere after the
// grace; and when a node is killed with SIGKILL its users go offline on the
// others within PRESENCE_GRACE plus PRESENCE_NODE_TTL — except those who
// reconnected to another node meanwhile, who never go offline.
func TestNodesSharePresence(t *testing.T) {
	t.Parallel()
	const grace, ttl = time.Second, 2 * time.Second
	c := startCluster(t, 3, "PRESENCE_GRACE", "1", "PRESENCE_NODE_TTL", "2")
	n0, n1, n2 := c.node(0), c.node(1), c.node(2)
	alice, bob, carol, dave := n0.MustUser(t, "alice"), n0.MustUser(t, "bob"), n0.MustUser(t, "carol"), n0.MustUser(t, "dave")
	group, _ := mustGroup(t, n0, alice, "Presence", "bob", "carol", "dave")

	// online waits until a node lists exactly these users as online to
	// the token's user.
	online := func(n *nodeProc, token string, want ...string) {
		t.Helper()
		slices.Sort(want)
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := n.call(t, "GET", "/users/online", token, nil)
			var got []string
			if users, ok := r.Body["users"].([]any); ok {
				for _, u := range users {
					got = append(got, fmt.Sprint(u))
				}
			}
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s lists %v online, want %v", n.URL, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	presence := func(ws *wsClient, who string, isOnline bool) {
		t.Helper()
		ws.next(func(f map[string]any) bool {
			return f["type"] == "presence" && f["username"] == who && f["online"] == isOnline
		})
	}

	wb := n1.MustDial(t, bob, group)
	wb.nextType("hello")
	wa := n0.MustDial(t, alice, group)
	presence(wb, "alice", true) // alice on node 0, bob on node 1
	online(n0, alice, "alice", "bob")
	online(n1, alice, "alice", "bob")
	online(n2, alice, "alice", "bob")

	// Carol connects to node 2 once it knows of the others: her first
	// list has everyone, and the others hear of her.
	online(n2, carol, "alice", "bob")
	wc := n2.MustDial(t, carol, group)
	list := wc.nextType("online_users")
	var got []string
	for _, u := range list["users"].([]any) {
		got = append(got, fmt.Sprint(u))
	}
	if want := []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
		t.Fatalf("carol's online_users on node 2: %v, want %v", got, want)
	}
	presence(wa, "carol", true)
	presence(wb, "carol", true)
	wd := n2.MustDial(t, dave, group)
	presence(wa, "dave", true)
	presence(wb, "dave", true)

	// Typing on node 2 shows on nodes 0 and 1.
	wc.send(map[string]any{"type": "typing", "chat_name": group})
	for _, ws := range []*wsClient{wa, wb} {
		ws.next(func(f map[string]any) bool {
			return f["type"] == "typing" && f["username"] == "carol" && f["typing"] == true
		})
	}

	// Alice leaves: offline on nodes 1 and 2 after the grace.
	left := time.Now()
	wa.conn.Close(websocket.StatusNormalClosure, "")
	presence(wb, "alice", false)
	presence(wc, "alice", false)
	if d := time.Since(left); d < grace {
		t.Fatalf("alice went offline %v after leaving, before the grace of %v", d, grace)
	}
	online(n1, bob, "bob", "carol", "dave")

	// Node 2 dies with carol and dave on it. Dave reconnects to node 0 at
	// once and stays online; carol does not come back and goes offline on
	// node 1 within the grace plus the heartbeat's TTL.
	killed := time.Now()
	c.node(2).kill9()
	wd2 := n0.MustDial(t, dave, group)
	wd2.nextType("hello")
	presence(wb, "carol", false)
	took := time.Since(killed)
	if bound := grace + ttl + time.Second; took > bound {
		t.Fatalf("carol went offline on node 1 %v after her node died, past the bound of %v", took, bound)
	}
	online(n1, bob, "bob", "dave")
	online(n0, dave, "bob", "dave")
	t.Logf("a killed node's user went offline on the others %v after the kill", took.Round(time.Millisecond))
	_ = wd
}

// TestNodesShareLoginThrottle: failed logins spread over two nodes count
// against one budget (five free failures of a username at an address, then
// a lock-out), on whichever node comes next. With Redis gone each node
// falls back to its own budget: guessing stays throttled, and a right
// password from elsewhere still logs in.
func TestNodesShareLoginThrottle(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	n0, n1 := c.node(0), c.node(1)
	n0.MustUser(t, "erin")
	n0.MustUser(t, "frank")
	login := func(n *nodeProc, name, pw string) int {
		return n.call(t, "POST", "/login/", "", map[string]string{"username": name, "password": pw}).Status
	}
	// Six wrong passwords, alternating nodes: the five free ones and the
	// one whose failure starts the lock-out.
	for i := range 6 {
		n := []*nodeProc{n0, n1}[i%2]
		if got := login(n, "erin", "wrong-password-"+fmt.Sprint(i)); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, got)
		}
	}
	for i, n := range []*nodeProc{n0, n1} {
		if got := login(n, "erin", testPassword); got != http.StatusTooManyRequests {
			t.Fatalf("node %d after six failures spread over two nodes: %d, want 429 (one budget for both)", i, got)
		}
	}

	// Redis away: a right password still logs in, and guessing is still
	// throttled by each node alone.
	c.redis.Kill()
	if got := login(n1, "frank", testPassword); got != http.StatusOK {
		t.Fatalf("login with Redis away: %d, want 200", got)
	}
	limited := false
	for i := range 8 {
		if got := login(n1, "frank", "wrong-password-"+fmt.Sprint(i)); got == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("eight wrong passwords on one node with Redis away: never throttled")
	}
}

// TestNodesMembershipBeforeAck: a membership change takes effect on every
// node before it is acknowledged. Right after the response to her removal
// (made on node 0), carol, on node 2, can no longer send to the group, and
// a message bob sends on node 1 right after it never reaches her; added
// back, she receives again. Repeated, since a node that lagged would show
// only some of the time.
func TestNodesMembershipBeforeAck(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	n0, n1, n2 := c.node(0), c.node(1), c.node(2)
	alice, bob, carol := n0.MustUser(t, "alice"), n0.MustUser(t, "bob"), n0.MustUser(t, "carol")
	group, _ := mustGroup(t, n0, alice, "Gatekeeping", "bob")
	wb := n1.MustDial(t, bob, group)
	wb.nextType("hello")
	wc := n2.MustDial(t, carol, "global")
	wc.nextType("hello")
	seen := make(chan map[string]any, 10000) // carol's frames, after the checks below took theirs
	const rounds = 8
	for i := range rounds {
		if r := n0.call(t, "POST", "/chats/"+group+"/members", alice, map[string]any{"members": []string{"carol"}}); r.Status != http.StatusOK {
			t.Fatalf("add carol: %d %s", r.Status, r.Raw)
		}
		// Added: she can send at once through her node.
		ok := fmt.Sprintf("c-ok-%d", i)
		wc.send(map[string]any{"type": "text", "chat_name": group, "client_id": ok, "text": textMark + ok})
		if f := wc.next(func(f map[string]any) bool {
			return f["client_id"] == ok && (f["type"] == "ack" || f["type"] == "error")
		}); f["type"] != "ack" {
			t.Fatalf("round %d: carol's send right after being added: %v", i, f)
		}
		if r := n0.call(t, "DELETE", "/chats/"+group+"/members/carol", alice, nil); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
		}
		late := fmt.Sprintf("c-late-%d", i)
		wc.send(map[string]any{"type": "text", "chat_name": group, "client_id": late, "text": textMark + late})
		after := fmt.Sprintf("b-after-%d", i)
		wb.send(map[string]any{"type": "text", "chat_name": group, "client_id": after, "text": textMark + after})
		f := wc.next(func(f map[string]any) bool {
			if f["type"] == "text" {
				seen <- f
			}
			return f["client_id"] == late && (f["type"] == "ack" || f["type"] == "error")
		})
		if f["type"] != "error" || f["code"] != "forbidden" {
			t.Fatalf("round %d: carol sent to the group right after her removal was acknowledged: %v", i, f)
		}
		wb.next(func(f map[string]any) bool { return f["type"] == "ack" && f["client_id"] == after })
	}
	// Added back, she gets bob's next message from node 1; node 1's
	// events reach node 2 in order, so any of his messages sent while she
	// was out would have come before it.
	if r := n0.call(t, "POST", "/chats/"+group+"/members", alice, map[string]any{"members": []string{"carol"}}); r.Status != http.StatusOK {
		t.Fatalf("add carol: %d %s", r.Status, r.Raw)
	}
	wb.send(map[string]any{"type": "text", "chat_name": group, "client_id": "b-final", "text": textMark + "final"})
	wc.next(func(f map[string]any) bool {
		if f["type"] == "text" {
			seen <- f
		}
		return f["type"] == "text" && f["client_id"] == "b-final"
	})
	close(seen)
	for f := range seen {
		if strings.HasPrefix(fmt.Sprint(f["client_id"]), "b-after-") {
			t.Fatalf("carol received %v, sent after her removal was acknowledged", f["client_id"])
		}
	}

	// Node 2 stalls (SIGSTOP) for a second: the removal's answer waits
	// until node 2 has handled it, and then carol cannot read the group
	// through node 2 either.
	const stall = time.Second
	n2.cmd.Process.Signal(syscall.SIGSTOP)
	resumed := make(chan struct{})
	go func() {
		time.Sleep(stall)
		n2.cmd.Process.Signal(syscall.SIGCONT)
		close(resumed)
	}()
	start := time.Now()
	if r := n0.call(t, "DELETE", "/chats/"+group+"/members/carol", alice, nil); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
	}
	if took := time.Since(start); took < stall {
		t.Fatalf("the removal was acknowledged %v after it was asked, while node 2 was stalled for %v: before node 2 had it", took, stall)
	}
	<-resumed
	if r := n2.call(t, "GET", "/chats/"+group, carol, nil); r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
		t.Fatalf("carol read the group through node 2 after her removal: %d", r.Status)
	}

	// A node that stalls longer holds a change up for broker.BarrierTimeout
	// at most: the change stands, and is answered.
	n2.cmd.Process.Signal(syscall.SIGSTOP)
	start = time.Now()
	r := n0.call(t, "POST", "/chats/"+group+"/members", alice, map[string]any{"members": []string{"carol"}})
	took := time.Since(start)
	n2.cmd.Process.Signal(syscall.SIGCONT)
	if r.Status != http.StatusOK {
		t.Fatalf("add carol with node 2 stalled: %d %s", r.Status, r.Raw)
	}
	if took > broker.BarrierTimeout+2*time.Second {
		t.Fatalf("a change waited %v for a stalled node, past the bound of %v", took, broker.BarrierTimeout)
	}
}

// TestNodesRecheckAfterRedisOutage: a membership change made while Redis
// is away cannot reach the other nodes, and membership has no line to fill
// from the database; so when Redis is back each node drops its chat cache
// and checks its connections' chats against the database, closing (1012,
// reconnect) the connection of a member removed meanwhile.
func TestNodesRecheckAfterRedisOutage(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	n0, n1 := c.node(0), c.node(1)
	alice, carol := n0.MustUser(t, "alice"), n0.MustUser(t, "carol")
	group, _ := mustGroup(t, n0, alice, "Outage", "carol")
	wc := n1.MustDial(t, carol, group)
	wc.nextType("hello")
	c.redis.Kill()
	c.waitBroker("down")
	if r := n0.call(t, "DELETE", "/chats/"+group+"/members/carol", alice, nil); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("remove carol with Redis away: %d %s", r.Status, r.Raw)
	}
	// Node 1 does not know yet: its cache and carol's socket are stale.
	c.redis.Restart()
	c.waitBroker("up")
	if code := wc.closeStatus(); code != websocket.StatusServiceRestart {
		t.Fatalf("carol's socket on node 1 closed with %d, want 1012 after the recheck", code)
	}
	if r := n1.call(t, "GET", "/chats/"+group, carol, nil); r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
		t.Fatalf("carol read the group through node 1 after the recheck: %d", r.Status)
	}
}

// TestNodesShardDelivery: a chat's events reach only the nodes that hold
// a connection in it. With its members on nodes 0 and 1, node 2 receives
// none of its messages or typing, while 0 and 1 get each once, in order. A
// member connecting to node 2 gets the message sent the moment she is
// told she is connected (a fresh chat each round, so node 2 subscribes
// its shard each time: the race of the subscription against the send). A
// member added on node 0 while connected to node 2 with no connection in
// the chat there gets the chat, its system message and what follows.
func TestNodesShardDelivery(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	n0, n1, n2 := c.node(0), c.node(1), c.node(2)
	alice, bob, carol, dave := n0.MustUser(t, "alice"), n0.MustUser(t, "bob"), n0.MustUser(t, "carol"), n0.MustUser(t, "dave")
	received := func(n *nodeProc) float64 { return n.mustScrape(t).value("mapsim_broker_events_received_total") }

	group, start := mustGroup(t, n0, alice, "Two nodes", "bob", "carol")
	chats := map[string]int64{group: start}
	a := newMember(t, "alice", alice, c.urls, 0, chats)
	b := newMember(t, "bob", bob, c.urls, 1, chats)
	for _, m := range []*member{a, b} {
		m.nextEvent("synced", func(f map[string]any) bool { return f["type"] == "synced" })
	}
	// Dave, on node 2, is in the global chat only.
	d := n2.MustDial(t, dave, "global")
	d.nextType("hello")
	base := received(n2)
	var want []int64
	for i := range 10 {
		m := []*member{a, b}[i%2]
		want = append(want, m.sendAcked(group, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i)))
		if i == 4 {
			a.mustSend(map[string]any{"type": "typing", "chat_name": group})
			b.nextEvent("typing", func(f map[string]any) bool { return f["type"] == "typing" && f["username"] == "alice" })
		}
	}
	slices.Sort(want)
	for _, m := range []*member{a, b} {
		m.waitHolds(group, want, 20*time.Second)
	}
	// Node 1 has them through Redis; node 2, on the same Redis, would have
	// had them by now.
	if got := received(n2) - base; got != 0 {
		t.Fatalf("node 2, with no connection in the chat, received %v events from Redis", got)
	}
	if got := received(n1); got < float64(len(want)/2) {
		t.Fatalf("node 1 received %v events, want at least %d", got, len(want)/2)
	}

	// A member connects to node 2 and a message follows her hello at once.
	const rounds = 8
	for i := range rounds {
		g, _ := mustGroup(t, n0, alice, fmt.Sprintf("Race %d", i), "bob", "carol")
		wa := n0.MustDial(t, alice, g)
		wa.nextType("hello")
		wc := n2.MustDial(t, carol, g)
		wc.nextType("hello")
		id := fmt.Sprintf("race-%d", i)
		wa.send(map[string]any{"type": "text", "chat_name": g, "client_id": id, "text": textMark + id})
		wc.next(func(f map[string]any) bool { return f["type"] == "text" && f["client_id"] == id })
		wa.conn.Close(websocket.StatusNormalClosure, "")
		wc.conn.Close(websocket.StatusNormalClosure, "")
	}
	if sc := n2.mustScrape(t); sc.value("mapsim_broker_shard_subscribes_total") < rounds {
		t.Fatalf("node 2 made %v shard subscriptions, want at least %d", sc.value("mapsim_broker_shard_subscribes_total"), rounds)
	}

	// Dave is added on node 0: node 2 holds him in the global chat only.
	g, _ := mustGroup(t, n0, alice, "Added", "bob")
	wa := n0.MustDial(t, alice, g)
	wa.nextType("hello")
	if r := n0.call(t, "POST", "/chats/"+g+"/members", alice, map[string]any{"members": []string{"dave"}}); r.Status != http.StatusOK {
		t.Fatalf("add dave: %d %s", r.Status, r.Raw)
	}
	d.nextType("chat_added")
	d.next(func(f map[string]any) bool { return f["type"] == "system" && f["chat_name"] == g })
	wa.send(map[string]any{"type": "text", "chat_name": g, "client_id": "welcome", "text": textMark + "welcome"})
	d.next(func(f map[string]any) bool { return f["type"] == "text" && f["client_id"] == "welcome" })
}

// TestNodesPresenceLimit: PRESENCE_LIMIT counts a chat's people on every
// node. A room over it carries no presence even though no node holds more
// than the limit of its connections: a room of 1,000 spread over three
// nodes is as big as on one (before, each node announced every arrival
// to its third of the room).
func TestNodesPresenceLimit(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, "PRESENCE_LIMIT", "2")
	n0, n1 := c.node(0), c.node(1)
	ann, bea, cid := n0.MustUser(t, "ann"), n0.MustUser(t, "bea"), n0.MustUser(t, "cid")
	room, _ := mustGroup(t, n0, ann, "Room", "bea", "cid")
	// sees waits until the socket learns that who is online: from its
	// first online_users list when its node already knew, or from a
	// presence frame when the news came later.
	sees := func(ws *wsClient, who string) {
		t.Helper()
		ws.next(func(f map[string]any) bool {
			if f["type"] == "online_users" {
				users, _ := f["users"].([]any)
				return slices.ContainsFunc(users, func(u any) bool { return u == who })
			}
			return f["type"] == "presence" && f["username"] == who && f["online"] == true
		})
	}
	a := n0.MustDial(t, ann, room)
	a.nextType("hello")
	b := n1.MustDial(t, bea, room)
	b.nextType("hello")
	// Two online: within the limit, and each node knows of the other's.
	sees(a, "bea")
	sees(b, "ann")

	// A third, on node 0 (two connections there, one user on node 1): the
	// room is over the limit, says nothing of cid, and cid's list holds
	// only cid.
	w := n0.MustDial(t, cid, room)
	if f := w.nextType("online_users"); fmt.Sprint(f["users"]) != "[cid]" {
		t.Fatalf("cid's online_users = %v, want only cid: the room is over PRESENCE_LIMIT across the nodes", f["users"])
	}
	w.send(map[string]any{"type": "text", "text": "marker", "client_id": "m1"})
	for _, ws := range []*wsClient{a, b} {
		if f := ws.next(func(f map[string]any) bool { return f["type"] == "text" || f["type"] == "presence" }); f["type"] != "text" {
			t.Fatalf("got %v before the marker: presence through a room over the limit", f)
		}
	}
}
