package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/testutil/clamdtest"
)

// upload posts a multipart form: chat_id first (when not ""), then the file.
func (s *testServer) upload(t testing.TB, token, chatID, name, ctype string, content io.Reader) apiResponse {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		if chatID != "" {
			mw.WriteField("chat_id", chatID)
		}
		h := textproto.MIMEHeader{}
		disposition := fmt.Sprintf(`form-data; name="file"; filename="%s"`, strings.NewReplacer(`"`, `\"`, "\\", "\\\\").Replace(name))
		if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			// Control and non-ASCII characters travel RFC 2231-encoded,
			// which is how they reach the server past the form parser.
			disposition = `form-data; name="file"; filename*=UTF-8''` + url.PathEscape(name)
		}
		h.Set("Content-Disposition", disposition)
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		part, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(part, content)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", s.URL+"/upload/", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return apiResponse{Status: -1, Raw: []byte(err.Error())}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := apiResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	json.Unmarshal(raw, &out.Body)
	return out
}

// download GETs a path and returns the response with its whole body, or the
// error that cut it.
func (s *testServer) download(t testing.TB, token, path string, header http.Header) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func pngImage(t testing.TB, w, h int) []byte {
	t.Helper()
	// Noise, so that the PNG stays large enough to span several chunks.
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(rng.Uint32()), uint8(x), uint8(y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storedFiles lists the regular files under the upload folder.
func storedFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// waitThumbnail fetches a thumbnail until it is made, checking that each
// answer before is the "still being made" 404 with a Retry-After.
func (s *testServer) waitThumbnail(t testing.TB, token, path string) (*http.Response, []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body, err := s.download(t, token, path, nil)
		if err != nil {
			t.Fatalf("thumbnail: %v", err)
		}
		if resp.StatusCode != http.StatusNotFound {
			return resp, body
		}
		if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "still being made") {
			t.Fatalf("thumbnail not ready: %s %s without a time to try again", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the thumbnail %s was not made within 15 s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFileSharing: an image and a document go up, come down intact to
// members only, with Range, the right headers and a thumbnail; a file
// message links them; nothing readable is on disk.
func TestFileSharing(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice, bob, eve := srv.MustUser(t, "alice"), srv.MustUser(t, "bob"), srv.MustUser(t, "eve")
			group := srv.call(t, "POST", "/chats/", alice, map[string]any{"e2ee": false, "kind": "group", "title": "Files", "members": []string{"bob"}}).str("name")
			bobWS := srv.MustDial(t, bob, "global")
			bobWS.nextType("hello")

			img := pngImage(t, 400, 300)
			up := srv.upload(t, alice, group, "holiday photo.png", "application/octet-stream", bytes.NewReader(img))
			if up.Status != http.StatusCreated || up.str("mime_type") != "image/png" || up.str("thumbnail_url") == "" || up.str("chat_name") != group {
				t.Fatalf("upload: %d %s", up.Status, up.Raw)
			}
			fileURL := up.str("file_url")

			// A member downloads it intact, inline, with the safety headers.
			resp, body, err := srv.download(t, bob, fileURL, nil)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, img) {
				t.Fatalf("download: %v %v, %d bytes", err, resp.Status, len(body))
			}
			h := resp.Header
			if h.Get("Content-Type") != "image/png" || !strings.HasPrefix(h.Get("Content-Disposition"), "inline;") ||
				!strings.Contains(h.Get("Content-Disposition"), "filename*=UTF-8''holiday%20photo.png") ||
				h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Fatalf("headers %v", h)
			}
			// Range requests, for seeking.
			if len(img) < 70000 {
				t.Fatalf("the test image is %d bytes; ranges below need more than one chunk", len(img))
			}
			resp, body, _ = srv.download(t, bob, fileURL, http.Header{"Range": {"bytes=65500-65599"}})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, img[65500:65600]) {
				t.Fatalf("range: %s, %d bytes", resp.Status, len(body))
			}
			resp, body, _ = srv.download(t, bob, fileURL, http.Header{"Range": {fmt.Sprintf("bytes=%d-", len(img)-10)}})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, img[len(img)-10:]) {
				t.Fatalf("tail range: %s, %d bytes", resp.Status, len(body))
			}
			// The thumbnail is made after the upload answers: until then it
			// is a 404 that says when to try again. Then it is a small image.
			resp, body = srv.waitThumbnail(t, bob, up.str("thumbnail_url"))
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") || len(body) == 0 || len(body) > len(img) {
				t.Fatalf("thumbnail: %s %s, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
			}
			if cfg, _, err := image.DecodeConfig(bytes.NewReader(body)); err != nil || cfg.Width > 320 || cfg.Height > 320 {
				t.Fatalf("thumbnail is %+v, %v", cfg, err)
			}

			// A non-member gets the same 404 as for a file that does not exist.
			for _, path := range []string{fileURL, up.str("thumbnail_url")} {
				resp, body, _ := srv.download(t, eve, path, nil)
				_, missing, _ := srv.download(t, eve, "/file/00000000000000000000000000000000", nil)
				if resp.StatusCode != http.StatusNotFound || string(body) != string(missing) {
					t.Fatalf("non-member %s: %s %s", path, resp.Status, body)
				}
			}
			if resp, _, _ := srv.download(t, "", fileURL, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("without a token: %s", resp.Status)
			}
			if resp, _, _ := srv.download(t, bob, "/file/../../etc/passwd", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("path trick: %s", resp.Status)
			}

			// A file message links it; bob sees the file's details.
			aliceWS := srv.MustDial(t, alice, group)
			aliceWS.nextType("hello")
			aliceWS.send(map[string]any{"type": "file", "chat_name": group, "text": fileURL, "client_id": "f1"})
			aliceWS.nextType("ack")
			f := bobWS.nextType("file")
			file, _ := f["file"].(map[string]any)
			if f["text"] != fileURL || file["name"] != "holiday photo.png" || num(file, "size") != int64(len(img)) || file["thumbnail_url"] == nil || num(file, "width") != 400 {
				t.Fatalf("file message %v", f)
			}
			hist := srv.call(t, "GET", "/messages/?chat_id="+group, bob, nil)
			if !strings.Contains(string(hist.Raw), `"mime_type":"image/png"`) {
				t.Fatalf("history without the file: %s", hist.Raw)
			}
			// It cannot be posted into another chat, nor by someone else.
			aliceWS.send(map[string]any{"type": "file", "chat_name": "global", "text": fileURL, "client_id": "f2"})
			if e := aliceWS.nextType("error"); e["code"] != "invalid" {
				t.Fatalf("posted into another chat: %v", e)
			}
			bobWS.send(map[string]any{"type": "file", "chat_name": group, "text": fileURL, "client_id": "f3"})
			if e := bobWS.nextType("error"); e["code"] != "forbidden" {
				t.Fatalf("someone else posted it: %v", e)
			}
			for _, bad := range []string{"/file/xyz", "hello", "/file/" + strings.Repeat("0", 32)} {
				aliceWS.send(map[string]any{"type": "file", "chat_name": group, "text": bad, "client_id": "bad"})
				if e := aliceWS.nextType("error"); e["code"] != "invalid" {
					t.Fatalf("file message %q: %v", bad, e)
				}
			}
			// A non-member cannot upload into the group.
			if r := srv.upload(t, eve, group, "x.txt", "text/plain", strings.NewReader("hi")); r.Status != http.StatusForbidden {
				t.Fatalf("non-member upload: %d %s", r.Status, r.Raw)
			}

			// Nothing readable is on disk: a marker in a document does not
			// appear in any stored file.
			marker := "MARKER-" + fmt.Sprint(time.Now().UnixNano())
			doc := strings.Repeat("lorem ipsum "+marker+"\n", 5000)
			if r := srv.upload(t, alice, "", "notes.txt", "text/plain", strings.NewReader(doc)); r.Status != http.StatusCreated {
				t.Fatalf("document upload: %d %s", r.Status, r.Raw)
			}
			stored := storedFiles(t, env["UPLOAD_DIR"])
			if len(stored) < 3 {
				t.Fatalf("only %d files stored: %v", len(stored), stored)
			}
			for _, p := range stored {
				raw, _ := os.ReadFile(p)
				if bytes.Contains(raw, []byte(marker)) || bytes.Contains(raw, img[200:264]) {
					t.Fatalf("%s holds plaintext", p)
				}
				if info, _ := os.Stat(p); info.Mode().Perm() != 0o600 {
					t.Fatalf("%s has mode %v", p, info.Mode())
				}
			}
		})
	}
}

// TestUploadBadInput: empty files, oversized files, hostile names, active
// content and damaged storage each get a clear answer and leave nothing
// behind.
func TestUploadBadInput(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, map[string]string{"UPLOAD_MAX_FILE_MB": "1"})
	srv := MustStart(t, env)
	alice := srv.MustUser(t, "alice")

	if r := srv.upload(t, alice, "", "empty.txt", "text/plain", strings.NewReader("")); r.Status != http.StatusBadRequest || !strings.Contains(r.str("detail"), "empty") {
		t.Fatalf("empty: %d %s", r.Status, r.Raw)
	}
	big := bytes.Repeat([]byte("x"), 3<<20)
	if r := srv.upload(t, alice, "", "big.bin", "", bytes.NewReader(big)); r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.str("detail"), "1 MB") {
		t.Fatalf("over the limit: %d %s", r.Status, r.Raw)
	}
	if left := storedFiles(t, env["UPLOAD_DIR"]); len(left) != 0 {
		t.Fatalf("failed uploads left %v", left)
	}

	names := map[string]string{
		"../../etc/passwd":          "passwd",
		`..\..\boot.ini`:            "boot.ini",
		"a\x00b.txt":                "ab.txt",
		"bell\x07.txt":              "bell.txt",
		"invoice\u202Egpj.exe":      "invoicegpj.exe",
		"..":                        "file",
		strings.Repeat("é", 500):    "",
		"report \"final\" v2.pdf":   "report \"final\" v2.pdf",
		"   spaced name.txt   ":     "spaced name.txt",
		"fichier d’été – 2026.docx": "fichier d’été – 2026.docx",
	}
	for in, want := range names {
		r := srv.upload(t, alice, "", in, "application/octet-stream", strings.NewReader("content"))
		if r.Status != http.StatusCreated {
			t.Fatalf("name %q: %d %s", in, r.Status, r.Raw)
		}
		got := r.str("name")
		if want == "" {
			if len(got) > 255 || got == "" {
				t.Fatalf("name of %d bytes became %d bytes", len(in), len(got))
			}
			continue
		}
		if got != want {
			t.Errorf("name %q stored as %q, want %q", in, got, want)
		}
		resp, _, _ := srv.download(t, alice, r.str("file_url"), nil)
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || strings.ContainsAny(cd, "\x00\r\n\u202E") {
			t.Errorf("name %q: Content-Disposition %q", in, cd)
		}
	}

	// A decompression bomb: a small PNG whose header claims 100,000 ×
	// 100,000 pixels is refused before anything decodes it.
	bomb := pngImage(t, 1, 1)
	binary.BigEndian.PutUint32(bomb[16:], 100000)
	binary.BigEndian.PutUint32(bomb[20:], 100000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	if r := srv.upload(t, alice, "", "bomb.png", "image/png", bytes.NewReader(bomb)); r.Status != http.StatusBadRequest || !strings.Contains(r.str("detail"), "100000") {
		t.Fatalf("pixel bomb: %d %s", r.Status, r.Raw)
	}

	// Active content is never served inline, nor as itself.
	for name, content := range map[string]string{
		"page.html": "<!doctype html><script>alert(1)</script>",
		"logo.svg":  `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`,
	} {
		r := srv.upload(t, alice, "", name, "image/svg+xml", strings.NewReader(content))
		resp, body, _ := srv.download(t, alice, r.str("file_url"), nil)
		if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") || string(body) != content {
			t.Errorf("%s served as %q, %q", name, ct, resp.Header.Get("Content-Disposition"))
		}
	}

	// Damaged storage fails loudly: a truncated file and a flipped bit.
	doc := bytes.Repeat([]byte("integrity matters. "), 20000)
	trunc := srv.upload(t, alice, "", "a.txt", "text/plain", bytes.NewReader(doc))
	flip := srv.upload(t, alice, "", "b.txt", "text/plain", bytes.NewReader(doc))
	var docs []string
	for _, p := range storedFiles(t, env["UPLOAD_DIR"]) {
		if info, _ := os.Stat(p); info.Size() > int64(len(doc)) && info.Size() < int64(len(doc))+10000 {
			docs = append(docs, p)
		}
	}
	if len(docs) != 2 {
		t.Fatalf("want the two documents on disk, found %v", docs)
	}
	info, _ := os.Stat(docs[0])
	os.Truncate(docs[0], info.Size()-1000)
	raw, _ := os.ReadFile(docs[1])
	raw[len(raw)/2] ^= 0x01
	os.WriteFile(docs[1], raw, 0o600)
	for _, r := range []apiResponse{trunc, flip} {
		resp, body, err := srv.download(t, alice, r.str("file_url"), nil)
		if err == nil && resp.StatusCode == 200 {
			t.Fatalf("a damaged file was served whole (%d bytes)", len(body))
		}
		if bytes.Equal(body, doc) {
			t.Fatal("a damaged file came back intact")
		}
	}
	if !strings.Contains(srv.logs.String(), "damaged") && !strings.Contains(srv.logs.String(), "integrity") {
		t.Fatal("damage was not logged")
	}
}

// TestQuotaExpiresOldestFiles: over UPLOAD_MAX_SIZE_GB the oldest files
// expire (their messages stay and say so), text history is untouched, and
// an upload while the janitor runs is unharmed.
func TestQuotaExpiresOldestFiles(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			// About 1 MiB of quota, 0.5 MiB per file.
			env := withoutRateLimits(baseEnv(t, b.env(t)))
			env["UPLOAD_MAX_SIZE_GB"] = "0.001"
			env["UPLOAD_MAX_FILE_MB"] = "0.5"
			srv := MustStart(t, env)
			alice := srv.MustUser(t, "alice")
			ws := srv.MustDial(t, alice, "global")
			ws.nextType("hello")
			ws.send(map[string]any{"type": "text", "text": "text history stays", "client_id": "t0"})
			ws.nextType("ack")

			var urls []string
			for i := range 3 {
				r := srv.upload(t, alice, "", fmt.Sprintf("f%d.bin", i), "", bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 400<<10)))
				if r.Status != http.StatusCreated {
					t.Fatalf("upload %d: %d %s", i, r.Status, r.Raw)
				}
				urls = append(urls, r.str("file_url"))
				ws.send(map[string]any{"type": "file", "text": r.str("file_url"), "client_id": fmt.Sprint("f", i)})
				ws.nextType("ack")
			}
			// The third did not fit: the first expired to make room.
			if resp, body, _ := srv.download(t, alice, urls[0], nil); resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "expired") {
				t.Fatalf("oldest file: %s %s", resp.Status, body)
			}
			for _, u := range urls[1:] {
				if resp, _, _ := srv.download(t, alice, u, nil); resp.StatusCode != 200 {
					t.Fatalf("%s: %s", u, resp.Status)
				}
			}
			hist := srv.call(t, "GET", "/messages/?chat_id=global", alice, nil)
			msgs := hist.Body["messages"].([]any)
			if len(msgs) != 4 || msgs[0].(map[string]any)["text"] != "text history stays" {
				t.Fatalf("history %s", hist.Raw)
			}
			if f := msgs[1].(map[string]any)["file"].(map[string]any); f["expired"] != true {
				t.Fatalf("expired file's message %v", f)
			}
			if !strings.Contains(srv.logs.String(), "quota janitor expired files") {
				t.Fatal("the janitor did not log what it freed")
			}

			// The janitor runs (from the admin command) while an upload is
			// streaming; the upload completes and is intact.
			pr, pw := io.Pipe()
			done := make(chan apiResponse, 1)
			go func() { done <- srv.upload(t, alice, "", "slow.bin", "", pr) }()
			chunk := bytes.Repeat([]byte("s"), 100<<10)
			pw.Write(chunk)
			var out bytes.Buffer
			if err := run(context.Background(), []string{"mapsim-chat", "admin", "prune-uploads"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, io.Discard, nil); err != nil {
				t.Fatalf("prune-uploads: %v", err)
			}
			if !strings.Contains(out.String(), "expired") || !strings.Contains(out.String(), "quota") {
				t.Fatalf("prune-uploads said %q", out.String())
			}
			pw.Write(chunk)
			pw.Close()
			r := <-done
			if r.Status != http.StatusCreated {
				t.Fatalf("upload during the janitor: %d %s", r.Status, r.Raw)
			}
			if resp, body, _ := srv.download(t, alice, r.str("file_url"), nil); resp.StatusCode != 200 || len(body) != 200<<10 {
				t.Fatalf("that upload: %s, %d bytes", resp.Status, len(body))
			}
		})
	}
}

// TestMalwareScanning: with CLAMAV_ADDR set, a clean file is accepted, the
// EICAR test file is refused and never stored, and a scanner that is down
// refuses uploads (503) instead of letting them through.
func TestMalwareScanning(t *testing.T) {
	t.Parallel()
	addr := clamdtest.Start(t)
	env := baseEnv(t, map[string]string{"CLAMAV_ADDR": addr})
	srv := MustStart(t, env)
	alice := srv.MustUser(t, "alice")
	if r := srv.upload(t, alice, "", "clean.txt", "text/plain", strings.NewReader("nothing to see")); r.Status != http.StatusCreated {
		t.Fatalf("clean file: %d %s", r.Status, r.Raw)
	}
	r := srv.upload(t, alice, "", "eicar.com", "application/octet-stream", strings.NewReader(clamdtest.EICAR))
	if r.Status != http.StatusBadRequest || !strings.Contains(strings.ToUpper(r.str("detail")), "EICAR") {
		t.Fatalf("EICAR: %d %s", r.Status, r.Raw)
	}
	if n := len(storedFiles(t, env["UPLOAD_DIR"])); n != 1 {
		t.Fatalf("%d files stored, want only the clean one", n)
	}

	down := baseEnv(t, map[string]string{"CLAMAV_ADDR": "127.0.0.1:1"})
	srv2 := MustStart(t, down)
	bob := srv2.MustUser(t, "bob")
	if r := srv2.upload(t, bob, "", "clean.txt", "text/plain", strings.NewReader("nothing to see")); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("scanner down: %d %s", r.Status, r.Raw)
	}
	if n := len(storedFiles(t, down["UPLOAD_DIR"])); n != 0 {
		t.Fatalf("%d files stored with the scanner down", n)
	}
}

// TestClearData: admin clear-data refuses without --yes, then removes every
// message, file and key version and keeps the users.
func TestClearData(t *testing.T) {
	t.Parallel()
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	alice := srv.MustUser(t, "alice")
	srv.upload(t, alice, "", "a.txt", "text/plain", strings.NewReader("a"))
	ws := srv.MustDial(t, alice, "global")
	ws.nextType("hello")
	ws.send(map[string]any{"type": "text", "text": "bye", "client_id": "c"})
	ws.nextType("ack")
	srv.Stop(t)

	admin := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"mapsim-chat", "admin"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &out, io.Discard, nil)
		return out.String(), err
	}
	if _, err := admin("clear-data"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("clear-data without --yes: %v", err)
	}
	out, err := admin("clear-data", "--yes")
	if err != nil || !strings.Contains(out, "removed 1 messages, 1 file records, 1 stored files") {
		t.Fatalf("clear-data: %q %v", out, err)
	}
	if left := storedFiles(t, env["UPLOAD_DIR"]); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	srv = MustStart(t, env)
	tok := srv.MustLogin(t, "alice", testPassword)
	if r := srv.call(t, "GET", "/messages/?chat_id=global", tok, nil); len(r.Body["messages"].([]any)) != 0 {
		t.Fatalf("history after clear-data: %s", r.Raw)
	}
}

// wavTone is `samples` of 16-bit mono PCM at 8 kHz as a WAV file, every
// sample different so that each range of it is recognisable.
func wavTone(samples int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	b.Write(le.AppendUint32(nil, uint32(36+2*samples)))
	b.WriteString("WAVEfmt ")
	b.Write(le.AppendUint32(nil, 16))
	b.Write(le.AppendUint16(nil, 1))
	b.Write(le.AppendUint16(nil, 1))
	b.Write(le.AppendUint32(nil, 8000))
	b.Write(le.AppendUint32(nil, 16000))
	b.Write(le.AppendUint16(nil, 2))
	b.Write(le.AppendUint16(nil, 16))
	b.WriteString("data")
	b.Write(le.AppendUint32(nil, uint32(2*samples)))
	for i := range samples {
		b.Write(le.AppendUint16(nil, uint16(i*7919)))
	}
	return b.Bytes()
}

// TestMediaURLs: on the whole server, on SQLite and MariaDB, a member's
// media URL plays an audio file by range without the bearer token; it
// does not open another file, stops the moment its user is removed from
// the chat, and its token is not in the log. (Expiry and every flipped
// bit: internal/httpapi's TestMediaURL.)
func TestMediaURLs(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
			group := srv.call(t, "POST", "/chats/", alice, map[string]any{"e2ee": false, "kind": "group", "title": "Media", "members": []string{"bob"}}).str("name")
			tone := wavTone(40000) // 80 kB: several sealed chunks
			up := srv.upload(t, alice, group, "tone.wav", "audio/wav", bytes.NewReader(tone))
			other := srv.upload(t, alice, group, "other.wav", "audio/wav", bytes.NewReader(wavTone(10)))
			if up.Status != http.StatusCreated || other.Status != http.StatusCreated {
				t.Fatalf("upload: %d %s; %d %s", up.Status, up.Raw, other.Status, other.Raw)
			}
			r := srv.call(t, "POST", up.str("file_url")+"/media-url", bob, nil)
			media := r.str("url")
			if r.Status != http.StatusOK || !strings.HasPrefix(media, up.str("file_url")+"/media?sig=") {
				t.Fatalf("media URL: %d %s", r.Status, r.Raw)
			}
			resp, body, err := srv.download(t, "", media, http.Header{"Range": {"bytes=65500-70099"}})
			if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, tone[65500:70100]) {
				t.Fatalf("a range: %v %v, %d bytes", err, resp.Status, len(body))
			}
			if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 65500-70099/%d", len(tone)); got != want ||
				resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "sandbox") {
				t.Fatalf("headers %v", resp.Header)
			}
			sig := media[strings.Index(media, "sig=")+4:]
			if resp, _, _ := srv.download(t, "", other.str("file_url")+"/media?sig="+sig, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("another file with this token: %d", resp.StatusCode)
			}
			if r := srv.call(t, "DELETE", "/chats/"+url.PathEscape(group)+"/members/bob", alice, nil); r.Status/100 != 2 {
				t.Fatalf("remove bob: %d %s", r.Status, r.Raw)
			}
			if resp, _, _ := srv.download(t, "", media, http.Header{"Range": {"bytes=0-99"}}); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("after bob was removed: %d", resp.StatusCode)
			}
			if logs := srv.logs.String(); strings.Contains(logs, sig) || !strings.Contains(logs, "sig=REDACTED") {
				t.Fatalf("the log has the token, or not the request:\n%s", logs)
			}
		})
	}
}
