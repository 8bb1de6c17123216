package httpapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// The web client is served from memory: every file of the embedded folder
// is read once, given a strong ETag and a version (a prefix of its SHA-256),
// and compressed with gzip and brotli the first time a browser asks for that
// encoding. A URL that carries the current version ("/static/app.js?v=…") is
// content-addressed, so it may be cached for good; any other URL is
// revalidated on every use (no-cache, If-None-Match → 304).
//
// The modules import one another by relative URL, which cannot carry a
// version; index.html therefore gets an import map, made at start, that maps
// each module's plain URL to its versioned one. Its hash is added to the
// page's Content-Security-Policy, which otherwise forbids inline script.

// immutable is the Cache-Control of a content-addressed URL.
const immutable = "public, max-age=31536000, immutable"

// staticAsset is one file, ready to serve.
type staticAsset struct {
	body    []byte
	ctype   string
	etag    string // strong, of the identity encoding: `"…"`
	version string // what ?v= must say for the URL to be content-addressed

	compressible bool
	subresource  bool // a script or style sheet, never rendered as a page
	gzipOnce     sync.Once
	gzipped      []byte // nil when gzip does not make it smaller
	brOnce       sync.Once
	brotlied     []byte
}

// staticSite is the web client: its files by path (without "/static/"),
// and index.html rewritten with versioned URLs and the import map.
type staticSite struct {
	web       fs.FS
	load      sync.Once
	err       error
	assets    map[string]*staticAsset
	index     *staticAsset
	indexCSP  string
	importMap string
}

func newStaticSite(web fs.FS) *staticSite {
	return &staticSite{web: web}
}

// ready loads the files on first use (a test's Routes() never does).
func (site *staticSite) ready() error {
	site.load.Do(func() { site.err = site.build() })
	return site.err
}

func (site *staticSite) build() error {
	if site.web == nil {
		return fmt.Errorf("static: no web client files")
	}
	site.assets = map[string]*staticAsset{}
	err := fs.WalkDir(site.web, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(site.web, name)
		if err != nil {
			return err
		}
		site.assets[name] = newStaticAsset(name, body)
		return nil
	})
	if err != nil {
		return fmt.Errorf("static: unable to read the web client: %w", err)
	}
	page, ok := site.assets["index.html"]
	if !ok {
		return fmt.Errorf("static: the web client has no index.html")
	}
	html, scriptHash := site.rewriteIndex(page.body)
	site.index = newStaticAsset("index.html", html)
	site.indexCSP = contentSecurityPolicyWith(scriptHash)
	return nil
}

// staticURL matches a root-relative URL of a static file in index.html.
var staticURL = regexp.MustCompile(`(src|href)="/static/([^"?#]+)"`)

// rewriteIndex versions index.html's own URLs and puts the import map of
// every module before its first script. It returns the page and the CSP
// source of the import map's hash ("" when the page has no script).
func (site *staticSite) rewriteIndex(page []byte) ([]byte, string) {
	page = staticURL.ReplaceAllFunc(page, func(m []byte) []byte {
		sub := staticURL.FindSubmatch(m)
		a, ok := site.assets[string(sub[2])]
		if !ok {
			return m
		}
		return fmt.Appendf(nil, `%s="/static/%s?v=%s"`, sub[1], sub[2], a.version)
	})
	at := bytes.Index(page, []byte("<script"))
	if at < 0 {
		return page, ""
	}
	imports := map[string]string{}
	for name, a := range site.assets {
		if strings.HasSuffix(name, ".js") {
			imports["/static/"+name] = "/static/" + name + "?v=" + a.version
		}
	}
	// json.Marshal sorts the keys, so the map (and its hash) is stable, and
	// escapes <, > and & so no file name can close the script element.
	list, err := json.Marshal(map[string]any{"imports": imports})
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	site.importMap = string(list)
	sum := sha256.Sum256(list)
	script := `<script type="importmap">` + site.importMap + "</script>\n"
	out := slices.Concat(page[:at], []byte(script), page[at:])
	return out, "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func newStaticAsset(name string, body []byte) *staticAsset {
	sum := sha256.Sum256(body)
	version := base64.RawURLEncoding.EncodeToString(sum[:9])
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = http.DetectContentType(body)
	}
	return &staticAsset{
		body:         body,
		ctype:        ctype,
		etag:         `"` + version + `"`,
		version:      version,
		compressible: compressibleType(ctype),
		subresource:  subresourceType(ctype),
	}
}

// subresourceType tells the types a browser only ever runs or applies for
// a page (JavaScript, CSS) from those it may render as a document of its
// own: HTML, and SVG, which can hold script.
func subresourceType(ctype string) bool {
	media, _, _ := strings.Cut(ctype, ";")
	switch strings.TrimSpace(media) {
	case "text/javascript", "application/javascript", "text/css":
		return true
	}
	return false
}

// dropDocumentHeaders takes off a script's or style sheet's answer the
// headers that only a document uses: the browser applies a
// Content-Security-Policy, X-Frame-Options, Referrer-Policy,
// Cross-Origin-Opener-Policy and Permissions-Policy of the page that loads
// a script, never the script's own (a script cannot be framed, open
// windows or be navigated to as a page; opened on its own it is shown as
// text under the viewer's policy). What does matter for them stays:
// nosniff (a script must be served as one), Cross-Origin-Resource-Policy
// (no other site may load them), HSTS and the cache headers. On HTTP/1.1,
// with some 40 modules, this is most of a first load's header bytes.
func dropDocumentHeaders(h http.Header) {
	for _, name := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Permissions-Policy"} {
		h.Del(name)
	}
}

// compressibleType tells text (HTML, CSS, JavaScript, SVG, JSON) from
// formats that are compressed already.
func compressibleType(ctype string) bool {
	media, _, _ := strings.Cut(ctype, ";")
	switch media = strings.TrimSpace(media); {
	case strings.HasPrefix(media, "text/"):
		return true
	case media == "image/svg+xml", media == "application/json", media == "application/javascript", media == "application/manifest+json":
		return true
	}
	return false
}

func (a *staticAsset) gzip() []byte {
	a.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		zw.Write(a.body)
		zw.Close()
		if buf.Len() < len(a.body) {
			a.gzipped = buf.Bytes()
		}
	})
	return a.gzipped
}

func (a *staticAsset) brotli() []byte {
	a.brOnce.Do(func() {
		var buf bytes.Buffer
		bw := brotli.NewWriterLevel(&buf, brotli.BestCompression)
		bw.Write(a.body)
		bw.Close()
		if buf.Len() < len(a.body) {
			a.brotlied = buf.Bytes()
		}
	})
	return a.brotlied
}

// encoding picks the smallest representation the request accepts: its
// Content-Encoding ("" for identity), its bytes and its ETag.
func (a *staticAsset) encoding(r *http.Request) (string, []byte, string) {
	if !a.compressible {
		return "", a.body, a.etag
	}
	accepts := acceptedEncodings(r.Header.Values("Accept-Encoding"))
	if accepts["br"] {
		if b := a.brotli(); b != nil {
			return "br", b, encodedETag(a.etag, "br")
		}
	}
	if accepts["gzip"] {
		if b := a.gzip(); b != nil {
			return "gzip", b, encodedETag(a.etag, "gzip")
		}
	}
	return "", a.body, a.etag
}

// encodedETag gives each encoding its own strong validator, as the bytes
// differ: `"v"` becomes `"v-gzip"`.
func encodedETag(etag, encoding string) string {
	return strings.TrimSuffix(etag, `"`) + "-" + encoding + `"`
}

// acceptedEncodings reads Accept-Encoding: the codings with a q-value above
// zero (RFC 9110 §12.5.3). An asterisk stands for gzip and br.
func acceptedEncodings(values []string) map[string]bool {
	out := map[string]bool{}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
						q = f
					}
				}
			}
			if coding == "*" {
				for _, c := range []string{"gzip", "br"} {
					if _, set := out[c]; !set {
						out[c] = q > 0
					}
				}
				continue
			}
			out[coding] = q > 0
		}
	}
	return out
}

// matchesETag reports whether If-None-Match names one of the asset's
// validators (any encoding: the cache holds what it can decode) or is "*".
func (a *staticAsset) matchesETag(header string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == a.etag || tag == encodedETag(a.etag, "gzip") || tag == encodedETag(a.etag, "br") {
			return true
		}
	}
	return false
}

// serve answers GET and HEAD for one asset with the given Cache-Control.
func (a *staticAsset) serve(w http.ResponseWriter, r *http.Request, cacheControl string) {
	h := w.Header()
	h.Set("Cache-Control", cacheControl)
	if a.compressible {
		h.Add("Vary", "Accept-Encoding")
	}
	encoding, body, etag := a.encoding(r)
	h.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && a.matchesETag(inm) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.ctype)
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// handleIndex serves the rewritten index.html, revalidated on every load
// so that a new version's URLs are picked up at once.
func (s *server) handleIndex(site *staticSite) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := site.ready(); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Security-Policy", site.indexCSP)
		site.index.serve(w, r, "no-cache")
	}
}

// handleStatic serves the files under /static/: only files that exist
// (no directory listings, no paths outside the folder), content-addressed
// ones cacheable for a year.
func (s *server) handleStatic(site *staticSite) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := site.ready(); err != nil {
			s.writeError(w, r, err)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if name == "index.html" {
			w.Header().Set("Content-Security-Policy", site.indexCSP)
			site.index.serve(w, r, "no-cache")
			return
		}
		a, ok := site.assets[name]
		if !ok || !fs.ValidPath(name) {
			s.notFound(w, r)
			return
		}
		if a.subresource {
			dropDocumentHeaders(w.Header())
		}
		cacheControl := "no-cache"
		if v := r.URL.Query().Get("v"); v != "" && v == a.version {
			cacheControl = immutable
		}
		a.serve(w, r, cacheControl)
	}
}
