package auth_test

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate measures the check every API request makes of its
// bearer token: the signature, then the session and its user in SQLite.
//
//	go test -run '^$' -bench Authenticate -benchtime 20000x ./internal/auth/
func BenchmarkAuthenticate(b *testing.B) {
	f := MustService(b, "open")
	f.MustUser(b, "alice")
	tok := f.MustLogin(b, "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Authenticate(ctx, tok.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
