package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The flood suite: each test floods the server one way, and while the
// flood lasts a witness — another user — checks what everyone else would
// notice: a message sent is acknowledged and reaches the witness's second
// connection within roundTripBound, every time.

// roundTripBound is the longest round trip a witness may see during a
// flood. It is generous (an idle server answers in milliseconds) because
// these tests run with the race detector on two shared cores; a server
// that lets a flood stall others takes far longer.
const roundTripBound = 2 * time.Second

// witness is a user with two connections to the global chat: one sends,
// the other receives, as another user experiences the server.
type witness struct {
	token   string
	out, in *wsClient
	sent    int
}

func newWitness(t testing.TB, srv *testServer, name string) *witness {
	t.Helper()
	tok := srv.MustUser(t, name)
	w := &witness{token: tok, out: srv.MustDial(t, tok, "global"), in: srv.MustDial(t, tok, "global")}
	w.out.nextType("hello")
	w.in.nextType("hello")
	return w
}

// roundTrips sends n messages, one every gap, and returns how long each
// took to be both acknowledged on the sending connection and delivered on
// the other.
func (w *witness) roundTrips(t testing.TB, n int, gap time.Duration) []time.Duration {
	t.Helper()
	pace := time.NewTicker(gap)
	defer pace.Stop()
	var took []time.Duration
	for range n {
		<-pace.C
		id := fmt.Sprintf("witness-%d", w.sent)
		w.sent++
		began := time.Now()
		w.out.send(map[string]any{"type": "text", "text": "still here?", "client_id": id})
		f := w.out.next(func(f map[string]any) bool {
			return (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == id
		})
		if f["type"] != "ack" {
			t.Fatalf("witness message %s: %v", id, f)
		}
		w.in.next(func(f map[string]any) bool { return f["type"] == "text" && f["client_id"] == id })
		took = append(took, time.Since(began))
	}
	return took
}

// checkRoundTrips fails the test unless every round trip is under
// roundTripBound.
func checkRoundTrips(t testing.TB, during string, took []time.Duration) {
	t.Helper()
	slowest := time.Duration(0)
	for _, d := range took {
		slowest = max(slowest, d)
	}
	t.Logf("%s: %d round trips, slowest %v", during, len(took), slowest)
	if slowest >= roundTripBound {
		t.Fatalf("%s: a round trip took %v (bound %v); all: %v", during, slowest, roundTripBound, took)
	}
}

// flood runs attack until the returned stop is called; stop waits for it
// to end. started is closed by the attack once it is under way.
func flood(attack func(ctx context.Context, started func())) (started <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Go(func() { attack(ctx, func() { once.Do(func() { close(ch) }) }) })
	return ch, func() { cancel(); wg.Wait() }
}

// waitFor waits for started, or fails the test after 30 s.
func waitFor(t testing.TB, started <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not get under way within 30 s", what)
	}
}

// mustUsers registers and logs in n users named prefix0, prefix1, … two at
// a time (the server hashes two passwords at once on two cores) and
// returns their access tokens.
func (s *testServer) mustUsers(t testing.TB, prefix string, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	errs := make([]error, n)
	post := func(path string, form url.Values) (map[string]any, error) {
		resp, err := s.client.PostForm(s.URL+path, form)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s: %s %v", path, resp.Status, body)
		}
		return body, nil
	}
	var wg sync.WaitGroup
	turns := make(chan struct{}, 2)
	for i := range n {
		wg.Go(func() {
			turns <- struct{}{}
			defer func() { <-turns }()
			form := url.Values{"username": {fmt.Sprint(prefix, i)}, "password": {testPassword}}
			if _, errs[i] = post("/register/", form); errs[i] != nil {
				return
			}
			var body map[string]any
			if body, errs[i] = post("/login/", form); errs[i] == nil {
				tokens[i], _ = body["access_token"].(string)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || tokens[i] == "" {
			t.Fatalf("user %s%d: %v", prefix, i, err)
		}
	}
	return tokens
}

// TestFloodConnections: many WebSocket opens at once from one address, by
// several users, again and again. The per-user cap and the per-address cap
// answer 429 (each with its own sentence), no user and no address ever holds
// more than its cap, and a witness at another address is not slowed.
func TestFloodConnections(t *testing.T) {
	const (
		perUser, perAddr = 20, 50
		users, attempts  = 4, 25 // 100 opens at once a wave; 80 would fit under the user caps
		attacker         = "203.0.113.7"
	)
	srv := MustStart(t, baseEnv(t, map[string]string{
		"TRUSTED_PROXIES": "127.0.0.1", "MAX_CONNECTIONS_PER_USER": fmt.Sprint(perUser), "MAX_CONNECTIONS_PER_IP": fmt.Sprint(perAddr),
	}))
	w := newWitness(t, srv, "witness")
	tokens := srv.mustUsers(t, "opener", users)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: users * attempts}}
	defer client.CloseIdleConnections()

	var (
		mu                            sync.Mutex
		waves, opened, byUser, byAddr int
		problems                      []string
	)
	started, stop := flood(func(ctx context.Context, started func()) {
		for ctx.Err() == nil {
			var wave sync.WaitGroup
			var waveMu sync.Mutex
			var conns []*websocket.Conn
			perUserOpen := make([]int, users)
			for u := range users {
				for range attempts {
					wave.Go(func() {
						dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
						defer cancel()
						conn, status, detail, err := srv.dialRefusal(dctx, client, tokens[u], from(attacker))
						waveMu.Lock()
						defer waveMu.Unlock()
						switch {
						case conn != nil:
							conns = append(conns, conn)
							perUserOpen[u]++
						case err != nil && ctx.Err() != nil: // the flood is over
						case err != nil:
							problems = append(problems, err.Error())
						case status == http.StatusTooManyRequests && strings.Contains(detail, fmt.Sprintf("You already have %d connections open", perUser)):
							byUser++
						case status == http.StatusTooManyRequests && strings.Contains(detail, fmt.Sprintf("This address already holds %d connections", perAddr)):
							byAddr++
						default:
							problems = append(problems, fmt.Sprintf("%d %s", status, detail))
						}
					})
				}
			}
			wave.Wait()
			mu.Lock()
			waves++
			opened += len(conns)
			if len(conns) > perAddr {
				problems = append(problems, fmt.Sprintf("wave %d: %d connections open from one address", waves, len(conns)))
			}
			for u, n := range perUserOpen {
				if n > perUser {
					problems = append(problems, fmt.Sprintf("wave %d: user %d holds %d connections", waves, u, n))
				}
			}
			if byUser > 0 && byAddr > 0 {
				started()
			}
			mu.Unlock()
			for _, c := range conns {
				c.CloseNow()
			}
		}
	})
	waitFor(t, started, "the connection flood")
	took := w.roundTrips(t, 10, 100*time.Millisecond)
	// A new connection from another address still gets in during the flood.
	late := srv.MustDial(t, w.token, "global")
	late.nextType("hello")
	stop()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d waves: %d opened, %d refused by the user cap, %d by the address cap", waves, opened, byUser, byAddr)
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	checkRoundTrips(t, "connection flood", took)
}

// TestFloodFrames: one connection at a time sends frames as fast as it
// can — messages, then ping frames, then WebSocket ping control frames —
// and a witness is not slowed down by any of them. The first two get
// too_many error frames and no more acks and pongs than the rates allow;
// when they send faster than they read the answers, their queue fills and
// they are closed (1008), and they reconnect as an attacker would. Control
// pings are answered by the WebSocket library, each with a pong.
func TestFloodFrames(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	w := newWitness(t, srv, "witness")
	flooder := srv.MustUser(t, "flooder")

	// counts are what a flooding connection was answered.
	type counts struct {
		sent, acks, pongs, tooMany, other atomic.Int64
		mu                                sync.Mutex
		closedWith                        map[string]int // by close code and reason
	}
	// jsonFlood sends frame(i) as fast as it can on a WebSocket, reading
	// every answer, and reconnects when the server closes it.
	jsonFlood := func(frame func(i int) []byte, n *counts) func(context.Context, func()) {
		n.closedWith = map[string]int{}
		return func(ctx context.Context, started func()) {
			for i := 0; ctx.Err() == nil; {
				conn, status, detail, err := srv.dialRefusal(ctx, nil, flooder, nil)
				if conn == nil && status == http.StatusTooManyRequests {
					continue // the last connection's slot is not given back yet
				}
				if conn == nil {
					if ctx.Err() == nil {
						t.Errorf("flooder refused: %v %d %s", err, status, detail)
					}
					return
				}
				conn.SetReadLimit(1 << 20)
				read := make(chan struct{})
				go func() {
					defer close(read)
					for {
						_, data, err := conn.Read(ctx)
						if err != nil {
							if ctx.Err() == nil {
								var ce websocket.CloseError
								errors.As(err, &ce)
								n.mu.Lock()
								n.closedWith[fmt.Sprintf("%d %s", ce.Code, ce.Reason)]++
								n.mu.Unlock()
							}
							return
						}
						var f struct{ Type, Code string }
						json.Unmarshal(data, &f)
						switch {
						case f.Type == "ack":
							n.acks.Add(1)
						case f.Type == "pong":
							n.pongs.Add(1)
						case f.Type == "error" && f.Code == "too_many":
							n.tooMany.Add(1)
							started()
						case f.Type == "error":
							n.other.Add(1)
						}
					}
				}()
				for ; ctx.Err() == nil; i++ {
					if conn.Write(ctx, websocket.MessageText, frame(i)) != nil {
						break
					}
					n.sent.Add(1)
				}
				conn.CloseNow()
				<-read
			}
		}
	}
	// measure runs one flood while the witness measures, and returns how
	// long the flood lasted, in seconds.
	measure := func(what string, attack func(context.Context, func())) float64 {
		t.Helper()
		began := time.Now()
		started, stop := flood(attack)
		defer stop()
		waitFor(t, started, what)
		took := w.roundTrips(t, 8, 100*time.Millisecond)
		stop()
		checkRoundTrips(t, what, took)
		return time.Since(began).Seconds()
	}
	// checkClosed fails the test if a flooder was closed for anything but
	// sending faster than it read its answers.
	checkClosed := func(what string, n *counts) {
		t.Helper()
		for why := range n.closedWith {
			if !strings.HasPrefix(why, "1008 send queue full") {
				t.Errorf("%s: the flooder was closed with %s", what, why)
			}
		}
		if n.tooMany.Load() == 0 || n.other.Load() > 0 {
			t.Errorf("%s: %d too_many error frames and %d others", what, n.tooMany.Load(), n.other.Load())
		}
	}

	// Messages: the user's rate (10 a second, bursts of 20) holds however
	// many connections the flood goes through.
	var spam counts
	lasted := measure("message flood", jsonFlood(func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"text","text":"spam %d","client_id":"s%d"}`, i, i)
	}, &spam))
	t.Logf("messages: %d sent, %d acked, %d too_many, closed %v", spam.sent.Load(), spam.acks.Load(), spam.tooMany.Load(), spam.closedWith)
	if most := 20 + 10*lasted + 1; float64(spam.acks.Load()) > most {
		t.Errorf("%d messages acknowledged in %.1f s; the rate allows %.0f", spam.acks.Load(), lasted, most)
	}
	checkClosed("message flood", &spam)

	// Ping frames: each connection's frame rate (40 a second, bursts of
	// 80) holds.
	var pings counts
	lasted = measure("ping frame flood", jsonFlood(func(int) []byte { return []byte(`{"type":"ping"}`) }, &pings))
	t.Logf("ping frames: %d sent, %d pongs, %d too_many, closed %v", pings.sent.Load(), pings.pongs.Load(), pings.tooMany.Load(), pings.closedWith)
	connections := 1
	for _, n := range pings.closedWith {
		connections += n
	}
	if most := float64(80*connections) + 40*lasted + 1; float64(pings.pongs.Load()) > most {
		t.Errorf("%d ping frames answered in %.1f s on %d connections; the rate allows %.0f", pings.pongs.Load(), lasted, connections, most)
	}
	checkClosed("ping frame flood", &pings)

	// Ping control frames, a batch per write, on a raw socket.
	var controlSent, controlPongs atomic.Int64
	cp := srv.MustUpgrade(t, flooder)
	measure("ping control frame flood", func(ctx context.Context, started func()) {
		defer context.AfterFunc(ctx, func() { cp.Close() })()
		go func() {
			for {
				op, _, err := cp.readFrame()
				if err != nil {
					return
				}
				if op == opPong {
					controlPongs.Add(1)
					started()
				}
			}
		}()
		var batch []byte
		for range 64 {
			batch = appendFrame(batch, opPing, []byte("flood"), true)
		}
		for ctx.Err() == nil {
			if _, err := cp.Write(batch); err != nil {
				if ctx.Err() == nil {
					t.Errorf("ping control frame flood: %v", err)
				}
				return
			}
			controlSent.Add(64)
		}
	})
	t.Logf("ping control frames: %d sent, %d pongs", controlSent.Load(), controlPongs.Load())
}

// TestFloodLogins: many parallel wrong logins. From one address the
// throttle lets 21 checks through (its 20 free failures and the one that
// starts the lock-out; checks in flight count) and answers 429 to the rest
// at once; from many addresses (a botnet behind a trusted
// proxy) every attempt is a fresh name at a fresh address, so none is
// throttled and each costs a password hash. The bound on concurrent
// hashing keeps the server answering everyone else meanwhile.
func TestFloodLogins(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"}))
	w := newWitness(t, srv, "witness")
	// More workers at the one address than the checks it may have in
	// flight, so that 429s come at once, whatever hashing costs here.
	const oneAddr, oneAddrWorkers, manyAddrWorkers = "203.0.113.9", 32, 16
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: oneAddrWorkers + manyAddrWorkers}}
	defer client.CloseIdleConnections()

	var (
		mu           sync.Mutex
		statuses     = map[string]map[int]int{"one": {}, "many": {}}
		noRetryAfter int
		next         atomic.Int64
	)
	login := func(ctx context.Context, addr string) (int, string, error) {
		body := fmt.Sprintf(`{"username":"nobody%d","password":"not-the-password"}`, next.Add(1))
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/login/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}
	started, stop := flood(func(ctx context.Context, started func()) {
		var workers sync.WaitGroup
		// The many addresses go first, so that their checks are not all
		// queued behind the one address's for the hash turns.
		for i := range manyAddrWorkers + oneAddrWorkers {
			workers.Go(func() {
				kind := "many"
				if i >= manyAddrWorkers {
					kind = "one"
				}
				for ctx.Err() == nil {
					addr := oneAddr
					if kind == "many" {
						n := next.Load()
						addr = fmt.Sprintf("198.18.%d.%d", n/250%250, n%250+1)
					}
					status, retryAfter, err := login(ctx, addr)
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("login: %v", err)
						}
						return
					}
					mu.Lock()
					statuses[kind][status]++
					if status == http.StatusTooManyRequests && retryAfter == "" {
						noRetryAfter++
					}
					// Under way: the one address is refused, and the many
					// addresses' passwords are being hashed.
					if statuses["one"][http.StatusTooManyRequests] > 0 && statuses["many"][http.StatusUnauthorized] >= 2 {
						started()
					}
					mu.Unlock()
				}
			})
		}
		workers.Wait()
	})
	defer stop()
	waitFor(t, started, "the login flood")
	took := w.roundTrips(t, 10, 100*time.Millisecond)
	stop()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("one address: %v; many addresses: %v (status: count)", statuses["one"], statuses["many"])
	one, many := statuses["one"], statuses["many"]
	if one[http.StatusUnauthorized] > 21 || one[http.StatusTooManyRequests] == 0 || noRetryAfter > 0 {
		t.Errorf("one address: %d wrong passwords checked (the throttle allows 21), %d refused, %d without Retry-After",
			one[http.StatusUnauthorized], one[http.StatusTooManyRequests], noRetryAfter)
	}
	for kind, byStatus := range statuses {
		for status, n := range byStatus {
			if status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
				t.Errorf("%s address(es): %d answers %d", kind, n, status)
			}
		}
	}
	if many[http.StatusTooManyRequests] > 0 {
		t.Errorf("%d fresh names at fresh addresses were throttled", many[http.StatusTooManyRequests])
	}
	checkRoundTrips(t, "login flood", took)
}

// TestFloodHalfOpen: 500 connections that hold a socket and do nothing
// useful. 300 are slowloris: half a request line, half the headers, or a
// header trickled a byte at a time, reopened whenever the server cuts them;
// READ_HEADER_TIMEOUT (1 s here, 10 s by default) cuts each, however slowly
// it trickles. 200 are WebSockets that upgrade and then never read: they
// stay counted as connections, cost the others nothing, and are told to
// reconnect (1012) when the server stops, like every other connection.
func TestFloodHalfOpen(t *testing.T) {
	const (
		headerTimeout = time.Second
		slowloris     = 300 // a third of each kind
		deaf          = 200 // upgraded, never reading, all one user's
	)
	srv := MustStart(t, baseEnv(t, map[string]string{
		"READ_HEADER_TIMEOUT": headerTimeout.String(), "DEBUG_ADDR": "127.0.0.1:0", "MAX_CONNECTIONS_PER_USER": fmt.Sprint(deaf),
	}))
	m := regexp.MustCompile(`debug listener.*addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no debug listener in the logs")
	}
	connections := func() int {
		t.Helper()
		resp, err := http.Get("http://" + m[1] + "/debug/vars")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var vars struct {
			Connections int `json:"connections"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
			t.Fatal(err)
		}
		return vars.Connections
	}
	w := newWitness(t, srv, "witness")

	// The deaf WebSockets: the upgrade request, then nothing read at all.
	var deafConns []*rawConn
	tok := srv.MustUser(t, "deaf")
	for range deaf {
		c, err := srv.rawDial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, srv.upgradeRequest("chat_name=global", "Authorization: Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
		deafConns = append(deafConns, c)
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(30 * time.Second); connections() < deaf+2; <-poll.C {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted after 30 s, want %d", connections(), deaf+2)
		}
	}

	// The slowloris connections, each reopened when the server cuts it.
	partial := []string{
		"GET /healthz HT",
		"GET /healthz HTTP/1.1\r\nHost: " + srv.host() + "\r\nX-Half: ",
		"GET /healthz HTTP/1.1\r\nHost: " + srv.host() + "\r\n", // then a byte every 100 ms
	}
	var (
		mu       sync.Mutex
		cut      int             // connections the server closed
		lifetime []time.Duration // of each, from open to the server's close
		problems []string
	)
	started, stop := flood(func(ctx context.Context, started func()) {
		var loris sync.WaitGroup
		for i := range slowloris {
			loris.Go(func() {
				kind := i % len(partial)
				for ctx.Err() == nil {
					c, err := srv.rawDial()
					if err != nil {
						mu.Lock()
						problems = append(problems, err.Error())
						mu.Unlock()
						return
					}
					opened := time.Now()
					stopWatch := context.AfterFunc(ctx, func() { c.Close() })
					_, err = io.WriteString(c, partial[kind])
					if kind == 2 {
						trickle := time.NewTicker(100 * time.Millisecond)
						for err == nil {
							select {
							case <-trickle.C:
								_, err = c.Write([]byte("X"))
							case <-ctx.Done():
								err = ctx.Err()
							}
						}
						trickle.Stop()
					}
					// Nothing more is sent: read what the server says until
					// it closes (a 400 for half a request line, nothing for
					// half the headers).
					var answer []byte
					if err == nil {
						answer, err = io.ReadAll(c)
					}
					life := time.Since(opened)
					stopWatch()
					c.Close()
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					if (err == nil || isReset(err)) && (len(answer) == 0 || bytes.HasPrefix(answer, []byte("HTTP/1.1 400 "))) {
						cut++
						lifetime = append(lifetime, life)
						if cut >= slowloris {
							started()
						}
					} else {
						problems = append(problems, fmt.Sprintf("slowloris %d: %q %v", kind, answer, err))
					}
					mu.Unlock()
				}
			})
		}
		loris.Wait()
	})
	defer stop()
	// The first generation is cut after the timeout; round trips are
	// measured while the next ones hold their sockets.
	waitFor(t, started, "the slowloris flood")
	took := w.roundTrips(t, 10, 100*time.Millisecond)
	stillCounted := connections()
	stop()

	mu.Lock()
	t.Logf("%d slowloris connections cut by the server, lifetimes %v to %v", cut, minOf(lifetime), maxOf(lifetime))
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	// Lifetimes are measured by the test's goroutines, which a busy
	// machine may wake early or late, hence the margins; the default
	// timeout (10 s) is well outside them.
	if minOf(lifetime) < headerTimeout/2 || maxOf(lifetime) > headerTimeout+5*time.Second {
		t.Errorf("slowloris connections lived %v to %v, want them cut at READ_HEADER_TIMEOUT (%v)", minOf(lifetime), maxOf(lifetime), headerTimeout)
	}
	mu.Unlock()
	if stillCounted < deaf+2 {
		t.Errorf("%d connections counted during the flood, want the %d deaf ones and the witness's 2", stillCounted, deaf)
	}
	checkRoundTrips(t, "half-open flood", took)

	// At the end the deaf connections are told to reconnect, like others.
	codes := make(chan error, len(deafConns))
	for _, c := range deafConns {
		go func() {
			if err := c.readUpgrade(); err != nil {
				codes <- err
				return
			}
			code, err := c.closeCode()
			if err == nil && code != int(websocket.StatusServiceRestart) {
				err = fmt.Errorf("closed with %d, want 1012", code)
			}
			c.Close()
			codes <- err
		}()
	}
	srv.Stop(t)
	for range deafConns {
		if err := <-codes; err != nil {
			t.Fatalf("a deaf connection at shutdown: %v", err)
		}
	}
}

// isReset reports whether err is the peer resetting the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func minOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxOf(ds []time.Duration) time.Duration {
	m := time.Duration(0)
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
