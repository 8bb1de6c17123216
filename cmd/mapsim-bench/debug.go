package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// debugVars is what the server's /debug/vars reports (DEBUG_ADDR).
type debugVars struct {
	Connections int   `json:"connections"`
	Goroutines  int   `json:"goroutines"`
	HeapInuse   int64 `json:"heap_inuse_bytes"`
	StackInuse  int64 `json:"stack_inuse_bytes"`
	Frames      int64 `json:"frames_written"`
	Writes      int64 `json:"writes"`
}

// debugClient talks to the server's debug listener; it is not one of the
// load's source addresses.
var debugClient = &http.Client{Timeout: 10 * time.Minute}

func (b *bench) debugGet(ctx context.Context, path, query string) (*http.Response, error) {
	u := b.cfg.debugURL.JoinPath(path)
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := debugClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", u.Path, resp.Status)
	}
	return resp, nil
}

// serverVars reads /debug/vars; ok is false without -debug-url.
func (b *bench) serverVars(ctx context.Context) (v debugVars, ok bool, err error) {
	if b.cfg.debugURL == nil {
		return v, false, nil
	}
	resp, err := b.debugGet(ctx, "/debug/vars", "")
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, false, fmt.Errorf("/debug/vars: %w", err)
	}
	return v, true, nil
}

// saveServerProfile fetches a profile (such as "profile" with
// "seconds=30", or "heap") from the server's pprof into -server-profile.
func (b *bench) saveServerProfile(ctx context.Context, which, query string) error {
	resp, err := b.debugGet(ctx, "/debug/pprof/"+which, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(b.cfg.serverProfile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileWindow records the server's CPU profile over [from, to], capped
// at two minutes, in the background; wait returns its error.
func (b *bench) profileWindow(ctx context.Context, from, to time.Time) (wait func() error) {
	if b.cfg.serverProfile == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		if !sleepUntil(ctx, from) {
			done <- ctx.Err()
			return
		}
		secs := int(min(to.Sub(from), 2*time.Minute).Seconds())
		done <- b.saveServerProfile(ctx, "profile", fmt.Sprintf("seconds=%d", max(secs, 1)))
	}()
	return func() error { return <-done }
}

// varsPerConn fills what the debug counters say about the cost of the
// connections opened between before and after.
func varsPerConn(srv *serverResult, before, after debugVars) {
	n := after.Connections - before.Connections
	if n <= 0 {
		return
	}
	g := after.Goroutines - before.Goroutines
	srv.Goroutines = &after.Goroutines
	srv.GoroutinesPerConn = round3(float64(g) / float64(n))
	srv.HeapPerConnKiB = round3(float64(after.HeapInuse-before.HeapInuse) / 1024 / float64(n))
	srv.StackPerConnKiB = round3(float64(after.StackInuse-before.StackInuse) / 1024 / float64(n))
}
