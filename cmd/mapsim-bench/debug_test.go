package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// TestDebugClient reads /debug/vars and fetches a profile with its query
// (the query must not be escaped into the path).
func TestDebugClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/debug/vars":
			w.Write([]byte(`{"connections":3,"goroutines":10,"heap_inuse_bytes":4096,"frames_written":9,"writes":3}`))
		case r.URL.Path == "/debug/pprof/profile" && r.URL.Query().Get("seconds") == "7":
			w.Write([]byte("profile bytes"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	out := filepath.Join(t.TempDir(), "cpu.pprof")
	b := &bench{cfg: config{debugURL: u, serverProfile: out}}
	v, ok, err := b.serverVars(context.Background())
	if err != nil || !ok || v.Connections != 3 || v.Goroutines != 10 || v.HeapInuse != 4096 || v.Frames != 9 || v.Writes != 3 {
		t.Fatalf("serverVars = %+v, %v, %v", v, ok, err)
	}
	if err := b.saveServerProfile(context.Background(), "profile", "seconds=7"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != "profile bytes" {
		t.Fatalf("profile file holds %q", got)
	}
	if err := b.saveServerProfile(context.Background(), "nothing", ""); err == nil {
		t.Fatal("a 404 was saved as a profile")
	}
	var srvRes serverResult
	varsPerConn(&srvRes, debugVars{Goroutines: 10, HeapInuse: 1 << 20}, debugVars{Connections: 100, Goroutines: 110, HeapInuse: 1<<20 + 100*2048, StackInuse: 100 * 4096})
	if srvRes.GoroutinesPerConn != 1 || srvRes.HeapPerConnKiB != 2 || srvRes.StackPerConnKiB != 4 {
		t.Fatalf("per connection: %+v", srvRes)
	}
}
