package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestNoGapsUnderFaults pushes 10,000 messages (and some edits) from
// several senders into a group while the receivers' connections are cut:
// by the receivers at random moments, by the slow-client policy (one
// receiver stops reading), and by a server restart halfway. After everyone
// has reconnected and synced, every receiver holds exactly the acknowledged
// messages and edits, in id order, each once.
func TestNoGapsUnderFaults(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			runFaultScenario(t, withoutRateLimits(baseEnv(t, b.env(t))))
		})
	}
}

const (
	faultSenders   = 3
	faultReceivers = 4
	faultMessages  = 10000
	faultEditEvery = 50 // every 50th message of a sender is edited once
)

// faultCluster is the moving target: the server's URL changes when it
// restarts.
type faultCluster struct {
	t   *testing.T
	env map[string]string
	mu  sync.Mutex
	srv *testServer
	gen int // bumped on every restart
}

func (c *faultCluster) current() (*testServer, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv, c.gen
}

func (c *faultCluster) restart() {
	c.mu.Lock()
	old := c.srv
	c.mu.Unlock()
	old.Stop(c.t)
	next := MustStart(c.t, c.env)
	c.mu.Lock()
	c.srv, c.gen = next, c.gen+1
	c.mu.Unlock()
}

// dial opens a resuming WebSocket, retrying while the server restarts.
func (c *faultCluster) dial(ctx context.Context, token string, client *http.Client) (*websocket.Conn, error) {
	for {
		srv, _ := c.current()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, _, err := websocket.Dial(dctx, srv.wsURL("resume=1&token="+url.QueryEscape(token)), &websocket.DialOptions{HTTPClient: client})
		cancel()
		if err == nil {
			conn.SetReadLimit(1 << 20)
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial: %w (last error %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func runFaultScenario(t *testing.T, env map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := &faultCluster{t: t, env: env, srv: MustStart(t, env)}
	srv, _ := cl.current()

	owner := srv.MustUser(t, "fowner")
	var senders, receivers []string
	names := []string{}
	for i := range faultSenders {
		senders = append(senders, srv.MustUser(t, fmt.Sprintf("sender%d", i)))
		names = append(names, fmt.Sprintf("sender%d", i))
	}
	for i := range faultReceivers {
		receivers = append(receivers, srv.MustUser(t, fmt.Sprintf("receiver%d", i)))
		names = append(names, fmt.Sprintf("receiver%d", i))
	}
	r := srv.call(t, "POST", "/chats/", owner, map[string]any{"e2ee": false, "kind": "group", "title": "Faults", "members": names})
	if r.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", r.Status, r.Raw)
	}
	group := r.str("name")
	startAfter := int64(0)
	if v, ok := r.Body["last_message_id"].(float64); ok {
		startAfter = int64(v)
	}

	var (
		ackMu sync.Mutex
		acked []int64 // every acknowledged message and edit id
		total atomic.Int64
	)
	record := func(id int64) {
		ackMu.Lock()
		acked = append(acked, id)
		ackMu.Unlock()
		total.Add(1)
	}

	// Receivers.
	type receiverResult struct {
		ids      []int64
		cuts     int // connections the receiver cut itself
		dropped  int // connections the server ended
		problems []string
	}
	results := make([]receiverResult, faultReceivers)
	// live ends when every sender is done; each receiver then makes one last
	// connection and syncs to the end.
	live, endLive := context.WithCancel(ctx)
	defer endLive()
	// slowCut is set when the server has cut the receiver that stopped
	// reading; the restart waits for it, so the two drops are distinct.
	var slowCut, restarting atomic.Bool
	var rwg sync.WaitGroup
	for i := range faultReceivers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			res := &results[i]
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			slow := i == 0 // the first receiver stops reading for a while
			client := http.DefaultClient
			if slow {
				dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
					return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192) })
				}}
				client = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
			}
			last := startAfter
			paused := false
			// take records one message, edit or delete frame.
			take := func(data []byte) (synced bool) {
				var f struct {
					Type string `json:"type"`
					ID   int64  `json:"id"`
					Chat string `json:"chat_name"`
				}
				json.Unmarshal(data, &f)
				switch f.Type {
				case "text", "edit", "delete":
					if f.Chat != group {
						return false
					}
					if f.ID <= last {
						res.problems = append(res.problems, fmt.Sprintf("got id %d after %d (duplicate or out of order)", f.ID, last))
					}
					res.ids = append(res.ids, f.ID)
					last = max(last, f.ID)
				case "synced":
					return f.Chat == group
				case "error":
					res.problems = append(res.problems, "error frame: "+string(data))
				}
				return false
			}
			openSynced := func(c context.Context) (*websocket.Conn, error) {
				conn, err := cl.dial(c, receivers[i], client)
				if err != nil {
					return nil, err
				}
				frame, _ := json.Marshal(map[string]any{"type": "sync", "chat_name": group, "after_id": last})
				if err := conn.Write(c, websocket.MessageText, frame); err != nil {
					conn.CloseNow()
					return nil, err
				}
				return conn, nil
			}
			for live.Err() == nil {
				conn, err := openSynced(live)
				if err != nil {
					if live.Err() == nil {
						res.dropped++
					}
					continue
				}
				cutAfter := 200 + rng.IntN(1500)
				pausedHere := false
				for n := 0; ; n++ {
					if !slow && n == cutAfter {
						conn.CloseNow()
						res.cuts++
						break
					}
					if slow && !paused && n == 300 {
						// Stop reading until the senders have pushed far more
						// than the socket buffers and the send queue hold.
						paused, pausedHere = true, true
						mark := total.Load()
						for total.Load() < mark+4000 && live.Err() == nil {
							time.Sleep(5 * time.Millisecond)
						}
					}
					_, data, err := conn.Read(live)
					if err != nil {
						if live.Err() == nil {
							res.dropped++
							if pausedHere && !restarting.Load() {
								slowCut.Store(true)
							}
						}
						conn.CloseNow()
						break
					}
					take(data)
				}
			}
			// The last connection: sync to the end.
			conn, err := openSynced(ctx)
			if err != nil {
				res.problems = append(res.problems, "final connection: "+err.Error())
				return
			}
			defer conn.CloseNow()
			for {
				_, data, err := conn.Read(ctx)
				if err != nil {
					res.problems = append(res.problems, "final sync: "+err.Error())
					return
				}
				if take(data) {
					return
				}
			}
		}()
	}

	// Senders: each keeps a window of unacknowledged messages and resends
	// them, with the same client ids, after every reconnect.
	var swg sync.WaitGroup
	senderErrs := make([]error, faultSenders)
	padding := strings.Repeat("x", 2000)
	for i := range faultSenders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			senderErrs[i] = runFaultSender(ctx, cl, senders[i], i, group, padding, record)
		}()
	}

	// Restart the server once half the messages are in.
	for (total.Load() < faultMessages/2 || !slowCut.Load()) && total.Load() < faultMessages*8/10 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	restarting.Store(true)
	cl.restart()
	swg.Wait()
	for i, err := range senderErrs {
		if err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	ackMu.Lock()
	want := slices.Clone(acked)
	ackMu.Unlock()
	slices.Sort(want)
	wantAcks := faultMessages
	for n := range faultSenders {
		wantAcks += (senderShare(n)-1)/faultEditEvery + 1
	}
	if len(want) != wantAcks {
		t.Fatalf("%d acknowledged ids, want %d", len(want), wantAcks)
	}
	if len(slices.Compact(slices.Clone(want))) != len(want) {
		t.Fatal("two acks carried the same id")
	}
	endLive()
	rwg.Wait()

	for i, res := range results {
		if len(res.problems) > 0 {
			t.Errorf("receiver %d: %d problems, first: %s", i, len(res.problems), res.problems[0])
		}
		if !slices.Equal(res.ids, want) {
			missing, extra := diffIDs(want, res.ids)
			t.Errorf("receiver %d holds %d ids, want %d; missing %v, unexpected %v", i, len(res.ids), len(want), head(missing), head(extra))
		}
		t.Logf("receiver %d: %d ids, cut itself %d times, dropped by the server %d times", i, len(res.ids), res.cuts, res.dropped)
	}
	if !slowCut.Load() {
		t.Errorf("the receiver that stopped reading was never cut by the server")
	}
}

// runFaultSender sends its share of the messages, edits every
// faultEditEvery-th once it is acknowledged, and reconnects and resends
// whatever is unacknowledged whenever the connection ends.
func runFaultSender(ctx context.Context, cl *faultCluster, token string, n int, group, padding string, record func(int64)) error {
	const window = 64
	share := senderShare(n)
	unacked := map[string][]byte{} // client id → frame
	nextMsg := 0
	for ctx.Err() == nil {
		if nextMsg == share && len(unacked) == 0 {
			return nil
		}
		conn, err := cl.dial(ctx, token, http.DefaultClient)
		if err != nil {
			return err
		}
		send := func(frame []byte) bool {
			return conn.Write(ctx, websocket.MessageText, frame) == nil
		}
		ok := true
		for _, frame := range unacked {
			if ok = send(frame); !ok {
				break
			}
		}
		for ok {
			for len(unacked) < window && nextMsg < share {
				id := fmt.Sprintf("s%d-m%d", n, nextMsg)
				frame, _ := json.Marshal(map[string]any{"type": "text", "chat_name": group, "client_id": id, "text": fmt.Sprintf("%s %s", id, padding)})
				unacked[id] = frame
				nextMsg++
				if ok = send(frame); !ok {
					break
				}
			}
			if !ok {
				break
			}
			if nextMsg == share && len(unacked) == 0 {
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
					continue // a second ack for a resend
				}
				delete(unacked, f.ClientID)
				record(f.ID)
				var seq int
				if _, err := fmt.Sscanf(f.ClientID, fmt.Sprintf("s%d-m%%d", n), &seq); err == nil && seq%faultEditEvery == 0 {
					eid := fmt.Sprintf("s%d-e%d", n, seq)
					frame, _ := json.Marshal(map[string]any{"type": "edit", "chat_name": group, "client_id": eid, "message_id": f.ID, "text": "edited " + eid})
					unacked[eid] = frame
					ok = send(frame)
				}
			case "error":
				if f.Code != "unavailable" {
					return fmt.Errorf("error frame for %s: %s %s", f.ClientID, f.Code, f.Detail)
				}
				// Shutting down (the connection closes and the resend
				// follows), or the commit outran COMMIT_TIMEOUT on a busy
				// machine: send it again with the same client id, as the
				// README asks of clients.
				if frame, pending := unacked[f.ClientID]; pending {
					ok = send(frame)
				}
			}
		}
		conn.CloseNow()
	}
	return ctx.Err()
}

// senderShare is how many messages sender n sends.
func senderShare(n int) int {
	if n == faultSenders-1 {
		return faultMessages - faultMessages/faultSenders*(faultSenders-1)
	}
	return faultMessages / faultSenders
}

func diffIDs(want, got []int64) (missing, extra []int64) {
	w := map[int64]bool{}
	for _, id := range want {
		w[id] = true
	}
	g := map[int64]bool{}
	for _, id := range got {
		g[id] = true
		if !w[id] {
			extra = append(extra, id)
		}
	}
	for _, id := range want {
		if !g[id] {
			missing = append(missing, id)
		}
	}
	return missing, extra
}

func head(ids []int64) []int64 {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}
