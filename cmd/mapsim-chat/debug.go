package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/mapsim/mapsim-chat/internal/broker"
	"github.com/mapsim/mapsim-chat/internal/hub"
)

// debugHandler serves Go's profiles under /debug/pprof/ and the server's
// counters as JSON at /debug/vars (with several nodes, the Redis broker's
// too: reconnects, gaps filled, events replayed). It is only ever served on
// DEBUG_ADDR, a loopback address (config refuses others).
func debugHandler(h *hub.Hub, rb *broker.Redis) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var bs *broker.RedisStats
		if rb != nil {
			st := rb.Stats()
			bs = &st
		}
		vars := struct {
			hub.Stats
			Broker     *broker.RedisStats `json:"broker,omitempty"`
			Goroutines int                `json:"goroutines"`
			HeapAlloc  uint64             `json:"heap_alloc_bytes"`
			HeapInuse  uint64             `json:"heap_inuse_bytes"`
			StackInuse uint64             `json:"stack_inuse_bytes"`
			Sys        uint64             `json:"sys_bytes"`
			NumGC      uint32             `json:"gc_cycles"`
		}{h.Stats(), bs, runtime.NumGoroutine(), ms.HeapAlloc, ms.HeapInuse, ms.StackInuse, ms.Sys, ms.NumGC}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(vars)
	})
	return mux
}

// serveDebug serves debugHandler on addr until ctx ends.
func serveDebug(ctx context.Context, addr string, h *hub.Hub, rb *broker.Redis, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: debugHandler(h, rb), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "err", err)
		}
	}()
	log.Info("debug listener (pprof, /debug/vars)", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
