package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"

	"github.com/mapsim/mapsim-chat/internal/httpapi"
	"github.com/mapsim/mapsim-chat/web"
)

var testSite = fstest.MapFS{
	"index.html":  {Data: []byte(`<!doctype html><link rel="stylesheet" href="/static/app.css"><script type="module" src="/static/app.js"></script><body>hi</body>`)},
	"app.js":      {Data: []byte(`import { x } from './lib/x.js';` + strings.Repeat("\nconsole.log(x);", 200))},
	"lib/x.js":    {Data: []byte(`export const x = 1;` + strings.Repeat("\n// padding", 100))},
	"app.css":     {Data: []byte(strings.Repeat("body { color: red; }\n", 100))},
	"photo.png":   {Data: append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1}, 500)...)},
	"secret/.env": {Data: []byte("no")},
}

// staticServer serves only the web client (the rest of Deps is unused by
// these routes).
func staticServer(tb testing.TB, files fs.FS) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(httpapi.NewServer(httpapi.Deps{Web: files, Log: slog.New(slog.DiscardHandler)}))
	tb.Cleanup(srv.Close)
	return srv
}

// get sends a request with the headers given as pairs, without the
// client's own gzip handling, and returns the response and its raw body.
func get(tb testing.TB, srv *httptest.Server, method, path string, header ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Transport.RoundTrip(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, body
}

var versioned = regexp.MustCompile(`/static/app\.js\?v=([A-Za-z0-9_-]+)`)

func TestStaticEncodings(t *testing.T) {
	srv := staticServer(t, testSite)
	plain := testSite["app.js"].Data
	for _, tc := range []struct {
		accept, want string
	}{
		{"gzip, deflate, br", "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip;q=0.5", "gzip"},
		{"GZIP", "gzip"},
		{"*", "br"},
		{"*, br;q=0", "gzip"},
		{"identity", ""},
		{"deflate", ""},
		{"gzip;q=0", ""},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			res, body := get(t, srv, "GET", "/static/app.js", "Accept-Encoding", tc.accept)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
			}
			if got := res.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary %q", got)
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/javascript") {
				t.Errorf("Content-Type %q", got)
			}
			var decoded []byte
			switch tc.want {
			case "br":
				decoded, _ = io.ReadAll(brotli.NewReader(bytes.NewReader(body)))
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				decoded, _ = io.ReadAll(zr)
			default:
				decoded = body
			}
			if !bytes.Equal(decoded, plain) {
				t.Fatalf("the body does not decode to the file (%d bytes sent)", len(body))
			}
			if tc.want != "" && len(body) >= len(plain)/2 {
				t.Errorf("%s sent %d bytes of %d", tc.want, len(body), len(plain))
			}
		})
	}

	// A PNG is compressed already: sent as it is, whatever is accepted.
	res, body := get(t, srv, "GET", "/static/photo.png", "Accept-Encoding", "gzip, br")
	if res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, testSite["photo.png"].Data) || res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("png: encoding %q, type %q, %d bytes", res.Header.Get("Content-Encoding"), res.Header.Get("Content-Type"), len(body))
	}
}

func TestStaticCaching(t *testing.T) {
	srv := staticServer(t, testSite)

	// index.html: revalidated on every load, with an ETag.
	res, page := get(t, srv, "GET", "/")
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("ETag") == "" {
		t.Fatalf("index: %d, Cache-Control %q, ETag %q", res.StatusCode, res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
	}
	again, body := get(t, srv, "GET", "/", "If-None-Match", res.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("index revalidated: %d with %d bytes", again.StatusCode, len(body))
	}
	if again.Header.Get("ETag") != res.Header.Get("ETag") || again.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("a 304 must repeat the ETag and Cache-Control: %v", again.Header)
	}

	// The page refers to content-addressed URLs: cached for good.
	m := versioned.FindSubmatch(page)
	if m == nil {
		t.Fatalf("index.html has no versioned app.js: %s", page)
	}
	res, _ = get(t, srv, "GET", string(m[0]))
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("versioned: %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	sum := sha256.Sum256(testSite["app.js"].Data)
	if want := base64.RawURLEncoding.EncodeToString(sum[:9]); string(m[1]) != want {
		t.Errorf("version %s, want a prefix of the SHA-256 (%s)", m[1], want)
	}

	// A plain URL, or a version that is not the file's (an old page after a
	// deploy), is revalidated instead: never cached for good.
	for _, path := range []string{"/static/app.js", "/static/app.js?v=old", "/static/app.js?v="} {
		res, _ := get(t, srv, "GET", path)
		if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("ETag") == "" {
			t.Errorf("%s: %d, Cache-Control %q, ETag %q", path, res.StatusCode, res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
		}
	}

	// ETags: one per encoding; If-None-Match with any of them (or a list,
	// or a weak form) answers 304; another file's does not.
	_, _ = get(t, srv, "GET", "/static/app.css")
	plainRes, _ := get(t, srv, "GET", "/static/app.js")
	gzRes, _ := get(t, srv, "GET", "/static/app.js", "Accept-Encoding", "gzip")
	brRes, _ := get(t, srv, "GET", "/static/app.js", "Accept-Encoding", "br")
	css, _ := get(t, srv, "GET", "/static/app.css")
	tags := []string{plainRes.Header.Get("ETag"), gzRes.Header.Get("ETag"), brRes.Header.Get("ETag")}
	if tags[0] == tags[1] || tags[1] == tags[2] || tags[0] == tags[2] {
		t.Errorf("the encodings share an ETag: %v", tags)
	}
	for _, inm := range []string{tags[0], tags[1], tags[2], `"x", ` + tags[2], "W/" + tags[0], "*"} {
		res, body := get(t, srv, "GET", "/static/app.js", "If-None-Match", inm, "Accept-Encoding", "gzip")
		if res.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match %s: %d with %d bytes", inm, res.StatusCode, len(body))
		}
		if res.Header.Get("Vary") != "Accept-Encoding" || res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Cross-Origin-Resource-Policy") != "same-origin" {
			t.Errorf("If-None-Match %s: a 304 without Vary or the security headers: %v", inm, res.Header)
		}
	}
	if res, _ := get(t, srv, "GET", "/static/app.js", "If-None-Match", css.Header.Get("ETag")); res.StatusCode != http.StatusOK {
		t.Errorf("another file's ETag: %d", res.StatusCode)
	}
}

func TestStaticHead(t *testing.T) {
	srv := staticServer(t, testSite)
	for _, path := range []string{"/", "/static/app.js", "/static/lib/x.js"} {
		getRes, getBody := get(t, srv, "GET", path, "Accept-Encoding", "gzip")
		res, body := get(t, srv, "HEAD", path, "Accept-Encoding", "gzip")
		if res.StatusCode != http.StatusOK || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes", path, res.StatusCode, len(body))
		}
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "ETag", "Cache-Control", "Vary"} {
			if res.Header.Get(k) != getRes.Header.Get(k) {
				t.Errorf("HEAD %s: %s %q, GET says %q", path, k, res.Header.Get(k), getRes.Header.Get(k))
			}
		}
		if getRes.ContentLength != int64(len(getBody)) {
			t.Errorf("GET %s: Content-Length %d for %d bytes", path, getRes.ContentLength, len(getBody))
		}
	}
}

func TestStaticOnlyFiles(t *testing.T) {
	srv := staticServer(t, testSite)
	for _, path := range []string{
		"/static/", "/static/lib", "/static/lib/", "/static/secret/",
		"/static/../go.mod", "/static/%2e%2e/go.mod", "/static/lib/../../go.mod", "/static/..%2fgo.mod",
		"/static/./app.js", "/static//app.js", "/static/lib\\x.js",
		"/static/app.js%00", "/static/APP.JS", "/static/nope.js", "/static/.env",
	} {
		res, body := get(t, srv, "GET", path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (%.80q)", path, res.StatusCode, body)
		}
		if bytes.Contains(body, []byte("<a href")) || bytes.Contains(body, []byte("console.log")) {
			t.Errorf("GET %s leaked a listing or a file: %.80q", path, body)
		}
	}
	if res, _ := get(t, srv, "POST", "/static/app.js"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
}

// TestStaticImportMap checks the real client: every module is mapped to
// its versioned URL, the map's hash is in the page's CSP (and nothing else
// inline is allowed), and the page's own URLs are versioned.
func TestStaticImportMap(t *testing.T) {
	files := web.Static()
	srv := staticServer(t, files)
	res, page := get(t, srv, "GET", "/")
	csp := res.Header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`<script type="importmap">(.*?)</script>`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no import map in %s", page)
	}
	sum := sha256.Sum256(m[1])
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if !strings.Contains(csp, "script-src 'self' "+hash+";") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q does not allow exactly the import map (%s)", csp, hash)
	}
	var importMap struct{ Imports map[string]string }
	if err := json.Unmarshal(m[1], &importMap); err != nil {
		t.Fatal(err)
	}
	modules := 0
	fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".js") {
			return err
		}
		modules++
		to := importMap.Imports["/static/"+name]
		if !strings.HasPrefix(to, "/static/"+name+"?v=") {
			t.Errorf("%s maps to %q", name, to)
			return nil
		}
		if res, _ := get(t, srv, "GET", to); res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d %q", to, res.StatusCode, res.Header.Get("Cache-Control"))
		}
		return nil
	})
	if modules < 10 || len(importMap.Imports) != modules {
		t.Errorf("%d modules, %d in the map", modules, len(importMap.Imports))
	}
	for _, ref := range []string{`href="/static/app.css?v=`, `src="/static/app.js?v=`, `href="/static/icon.svg?v=`} {
		if !bytes.Contains(page, []byte(ref)) {
			t.Errorf("index.html lacks %s", ref)
		}
	}
	// Any other document keeps the strict policy.
	if res, _ := get(t, srv, "GET", "/static/icon.svg"); !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self';") {
		t.Errorf("the icon's CSP: %q", res.Header.Get("Content-Security-Policy"))
	}
}

// TestStaticHeaders: pages (HTML, and SVG, which can hold script) carry
// every document header; scripts and style sheets only those that matter
// for them: nosniff, Cross-Origin-Resource-Policy and caching. A CSP,
// frame or referrer policy on a script has no effect on the page that
// loads it, and on HTTP/1.1 it costs some 700 bytes per module.
func TestStaticHeaders(t *testing.T) {
	files := fstest.MapFS{}
	for k, v := range testSite {
		files[k] = v
	}
	files["icon.svg"] = &fstest.MapFile{Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)}
	srv := staticServer(t, files)
	document := []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Permissions-Policy"}
	for _, tt := range []struct {
		path string
		page bool
	}{
		{"/", true}, {"/static/index.html", true}, {"/static/icon.svg", true}, {"/static/photo.png", true},
		{"/static/app.js", false}, {"/static/lib/x.js", false}, {"/static/app.css", false},
		{"/static/nowhere.js", true}, // a 404 is an error document
	} {
		for _, extra := range [][]string{nil, {"Accept-Encoding", "br"}} {
			res, _ := get(t, srv, "GET", tt.path, extra...)
			h := res.Header
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cross-Origin-Resource-Policy") != "same-origin" {
				t.Errorf("%s: nosniff or CORP missing: %v", tt.path, h)
			}
			for _, name := range document {
				if got := h.Get(name) != ""; got != tt.page {
					t.Errorf("%s %v: %s present %v, want %v", tt.path, extra, name, got, tt.page)
				}
			}
			if res.StatusCode == http.StatusOK && h.Get("Cache-Control") == "" {
				t.Errorf("%s: no Cache-Control", tt.path)
			}
			if !tt.page {
				// The 304 of a revalidation too.
				res, _ := get(t, srv, "GET", tt.path, "If-None-Match", h.Get("ETag"))
				if res.StatusCode != http.StatusNotModified || res.Header.Get("Content-Security-Policy") != "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: revalidation %d %v", tt.path, res.StatusCode, res.Header)
				}
			}
		}
	}
	// The page's policy is the strict one, with the import map's hash only.
	res, _ := get(t, srv, "GET", "/")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'sha256-") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("page CSP %q", csp)
	}
}
