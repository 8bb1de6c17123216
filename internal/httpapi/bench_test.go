package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRequest measures one request through the whole middleware chain
// (request id, client address, access log, security headers, host pinning)
// to GET /healthz, without the network.
//
//	go test -run '^$' -bench Request -benchtime 200000x ./internal/httpapi/
func BenchmarkRequest(b *testing.B) {
	a := MustAPI(b)
	h := a.Config.Handler
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("healthz: %d", w.Code)
		}
	}
}
