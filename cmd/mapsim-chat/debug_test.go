package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestDebugListener checks DEBUG_ADDR: pprof and the counters are served
// on the loopback address, and not on the public listener.
func TestDebugListener(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, map[string]string{"DEBUG_ADDR": "127.0.0.1:0"}))
	m := regexp.MustCompile(`debug listener.*addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no debug listener in the logs:\n%s", srv.logs.String())
	}
	debugURL := "http://" + m[1]
	token := srv.MustUser(t, "debugger")
	c := srv.MustDial(t, token, "global")
	c.nextType("hello")

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get(debugURL + "/debug/vars")
	if status != 200 {
		t.Fatalf("/debug/vars: %d %s", status, body)
	}
	var vars struct {
		Connections int `json:"connections"`
		Goroutines  int `json:"goroutines"`
		HeapInuse   int `json:"heap_inuse_bytes"`
	}
	if err := json.Unmarshal([]byte(body), &vars); err != nil {
		t.Fatalf("/debug/vars is not JSON: %v\n%s", err, body)
	}
	if vars.Connections != 1 || vars.Goroutines == 0 || vars.HeapInuse == 0 {
		t.Fatalf("/debug/vars = %s, want one connection and runtime counters", body)
	}
	if status, body := get(debugURL + "/debug/pprof/goroutine?debug=1"); status != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", status, body)
	}
	// The public listener does not serve them.
	for _, path := range []string{"/debug/vars", "/debug/pprof/"} {
		if status, body := get(srv.URL + path); status == 200 && (strings.Contains(body, "goroutines") || strings.Contains(body, "profile")) {
			t.Fatalf("public %s answered %d with debug data", path, status)
		}
	}
}
