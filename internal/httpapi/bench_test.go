package httpapi_test

import (
	"fmt"
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

// BenchmarkListChats lists the chats of a user in 50 groups, each with a
// message (its "created" event) for the list to preview.
func BenchmarkListChats(b *testing.B) {
	a := MustAPI(b)
	alice := a.MustLogin(b, "alice")
	a.MustLogin(b, "bob")
	for i := range 50 {
		body := fmt.Sprintf(`{"kind":"group","e2ee":false,"title":"group %d","members":["bob"]}`, i)
		if code, _, out := a.do(b, "POST", "/chats/", alice, "application/json", body); code != http.StatusCreated {
			b.Fatalf("create group: %d %v", code, out)
		}
	}
	h := a.Config.Handler
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", a.URL+"/chats/", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Authorization", "Bearer "+alice)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("list chats: %d", w.Code)
		}
	}
}
