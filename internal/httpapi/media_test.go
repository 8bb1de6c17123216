package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/auth"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
)

// mustWAV is `samples` of 16-bit mono PCM at 8 kHz as a WAV file, each
// sample different so that every range of it is recognisable.
func mustWAV(samples int) []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+2*samples))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(8000), uint32(16000), uint16(2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(2*samples))
	for i := range samples {
		binary.Write(&b, binary.LittleEndian, int16(i*7919))
	}
	return b.Bytes()
}

// mustUpload uploads a file to a chat as the token's user and returns its id.
func (a *api) mustUpload(tb testing.TB, token, chatRef, name, mimeType string, content []byte) string {
	tb.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("chat_id", chatRef)
	part, err := mw.CreatePart(map[string][]string{
		"Content-Disposition": {fmt.Sprintf(`form-data; name="file"; filename=%q`, name)},
		"Content-Type":        {mimeType},
	})
	if err != nil {
		tb.Fatal(err)
	}
	part.Write(content)
	mw.Close()
	code, _, out := a.do(tb, "POST", "/upload/", token, mw.FormDataContentType(), body.String())
	id, _ := out["file_id"].(string)
	if code != http.StatusCreated || id == "" {
		tb.Fatalf("upload %s: %d %v", name, code, out)
	}
	return id
}

// get fetches a path without a token, with the headers given in pairs, and
// returns the answer and its whole body.
func (a *api) get(tb testing.TB, path string, header ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest("GET", a.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := a.Client().Do(req)
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

// mediaURL asks for a media URL of a file as the token's user.
func (a *api) mediaURL(tb testing.TB, token, fileID string) (int, http.Header, string) {
	tb.Helper()
	code, h, out := a.do(tb, "POST", "/file/"+fileID+"/media-url", token, "", "")
	u, _ := out["url"].(string)
	if code == http.StatusOK {
		// The expiry is in whole seconds, never later than MediaTTL.
		if ttl, _ := out["expires_in"].(float64); ttl > auth.MediaTTL.Seconds() || ttl < auth.MediaTTL.Seconds()-1 {
			tb.Errorf("expires_in %v, want %v", out["expires_in"], auth.MediaTTL.Seconds())
		}
	}
	return code, h, u
}

// sigOf returns the token in a media URL's query.
func sigOf(tb testing.TB, mediaURL string) string {
	tb.Helper()
	u, err := url.Parse(mediaURL)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Query().Get("sig")
}

// TestMediaURL: a member gets a short-lived URL that plays an audio or
// video file without the bearer token, answering ranges with a download's
// headers; the URL works for that file only, stops at its expiry, the
// moment its user leaves the chat or its session ends, and with any bit
// of it changed; its token never reaches the log.
func TestMediaURL(t *testing.T) {
	clock := testclock.New(time.Now())
	a := MustAPIAt(t, clock.Now)
	alice, bob, eve := a.MustLogin(t, "alice"), a.MustLogin(t, "bob"), a.MustLogin(t, "eve")
	code, _, group := a.do(t, "POST", "/chats/", alice, "application/json", `{"kind":"group","title":"Media","members":["bob"],"e2ee":false}`)
	if code != http.StatusCreated {
		t.Fatalf("create group: %d %v", code, group)
	}
	chatName := group["name"].(string)
	tone := mustWAV(4000)
	wav := a.mustUpload(t, alice, chatName, "tone.wav", "audio/wav", tone)
	other := a.mustUpload(t, alice, chatName, "other.wav", "audio/wav", mustWAV(100))
	pic := a.mustUpload(t, alice, chatName, "pic.png", "image/png", MustPNG(t, 8, 8))
	elsewhere := a.mustUpload(t, eve, "global", "eve.wav", "audio/wav", mustWAV(50))

	code, h, media := a.mediaURL(t, bob, wav)
	if code != http.StatusOK || !strings.HasPrefix(media, "/file/"+wav+"/media?sig=") {
		t.Fatalf("media URL: %d %q", code, media)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("the media URL's answer is cacheable: %q", h.Get("Cache-Control"))
	}
	sig := sigOf(t, media)

	t.Run("asking", func(t *testing.T) {
		if code, _, _ := a.do(t, "POST", "/file/"+wav+"/media-url", "", "", ""); code != http.StatusUnauthorized {
			t.Errorf("without a token: %d", code)
		}
		// A non-member learns nothing: the same answer as a missing file.
		code, _, out := a.do(t, "POST", "/file/"+wav+"/media-url", eve, "", "")
		missingCode, _, missing := a.do(t, "POST", "/file/"+strings.Repeat("0", 32)+"/media-url", eve, "", "")
		if code != http.StatusNotFound || code != missingCode || fmt.Sprint(out) != fmt.Sprint(missing) {
			t.Errorf("a non-member: %d %v; a missing file: %d %v", code, out, missingCode, missing)
		}
		if code, _, out := a.do(t, "POST", "/file/"+pic+"/media-url", bob, "", ""); code != http.StatusBadRequest || out["code"] != "invalid" {
			t.Errorf("an image: %d %v", code, out)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		res, body := a.get(t, media)
		if res.StatusCode != http.StatusOK || !bytes.Equal(body, tone) {
			t.Fatalf("whole file: %d, %d bytes of %d", res.StatusCode, len(body), len(tone))
		}
		for header, want := range map[string]string{
			"Content-Type": "audio/wave", "X-Content-Type-Options": "nosniff", "Accept-Ranges": "bytes",
			"Cross-Origin-Resource-Policy": "same-origin",
		} {
			if got := res.Header.Get(header); got != want {
				t.Errorf("%s: %q, want %q", header, got, want)
			}
		}
		if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="tone.wav"`) {
			t.Errorf("Content-Disposition %q", cd)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") {
			t.Errorf("CSP %q", csp)
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}

		res, body = a.get(t, media, "Range", "bytes=100-1099")
		if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, tone[100:1100]) {
			t.Fatalf("a range: %d, %d bytes", res.StatusCode, len(body))
		}
		if got, want := res.Header.Get("Content-Range"), fmt.Sprintf("bytes 100-1099/%d", len(tone)); got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "sandbox;") {
			t.Errorf("a range lacks a download's headers: %v", res.Header)
		}
		res, body = a.get(t, media, "Range", "bytes=7000-")
		if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, tone[7000:]) {
			t.Errorf("an open range: %d, %d bytes", res.StatusCode, len(body))
		}
		// If-Range: the same file gives the range, a changed one all of it.
		res, body = a.get(t, media, "Range", "bytes=0-9", "If-Range", etag)
		if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, tone[:10]) {
			t.Errorf("If-Range with its ETag: %d, %d bytes", res.StatusCode, len(body))
		}
		res, body = a.get(t, media, "Range", "bytes=0-9", "If-Range", `"0000"`)
		if res.StatusCode != http.StatusOK || !bytes.Equal(body, tone) {
			t.Errorf("If-Range with another ETag: %d, %d bytes", res.StatusCode, len(body))
		}
		res, _ = a.get(t, media, "Range", fmt.Sprintf("bytes=%d-", len(tone)+10))
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("a range past the end: %d", res.StatusCode)
		}
	})

	t.Run("refused", func(t *testing.T) {
		refused := func(name, path string, want int) {
			t.Helper()
			res, body := a.get(t, path, "Range", "bytes=0-99")
			if res.StatusCode != want || bytes.Contains(body, tone[44:99]) {
				t.Errorf("%s: %d %s, want %d", name, res.StatusCode, body, want)
			}
		}
		refused("no token", "/file/"+wav+"/media", http.StatusUnauthorized)
		refused("an empty token", "/file/"+wav+"/media?sig=", http.StatusUnauthorized)
		refused("the bearer token", "/file/"+wav+"/media?sig="+url.QueryEscape(bob), http.StatusUnauthorized)
		refused("another file of the chat", "/file/"+other+"/media?sig="+sig, http.StatusUnauthorized)
		refused("an image", "/file/"+pic+"/media?sig="+sig, http.StatusUnauthorized)
		refused("a file of another chat", "/file/"+elsewhere+"/media?sig="+sig, http.StatusUnauthorized)
		refused("a file id that is not one", "/file/nothex/media?sig="+sig, http.StatusNotFound)
		refused("padded", "/file/"+wav+"/media?sig="+sig+"%3D", http.StatusUnauthorized)
		raw, err := base64.RawURLEncoding.DecodeString(sig)
		if err != nil {
			t.Fatal(err)
		}
		// Every bit flipped, one at a time: version, user, session,
		// expiry and signature alike.
		for i := range len(raw) * 8 {
			flipped := bytes.Clone(raw)
			flipped[i/8] ^= 1 << (i % 8)
			res, _ := a.get(t, "/file/"+wav+"/media?sig="+base64.RawURLEncoding.EncodeToString(flipped), "Range", "bytes=0-99")
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("bit %d flipped: %d", i, res.StatusCode)
			}
		}
		// The first URL still works after all that.
		if res, _ := a.get(t, media, "Range", "bytes=0-99"); res.StatusCode != http.StatusPartialContent {
			t.Fatalf("the URL itself: %d", res.StatusCode)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		code, _, fresh := a.mediaURL(t, bob, wav)
		if code != http.StatusOK {
			t.Fatalf("media URL: %d", code)
		}
		clock.Advance(auth.MediaTTL - 2*time.Second)
		if res, _ := a.get(t, fresh, "Range", "bytes=0-99"); res.StatusCode != http.StatusPartialContent {
			t.Fatalf("just before its expiry: %d", res.StatusCode)
		}
		clock.Advance(2 * time.Second)
		res, _ := a.get(t, fresh, "Range", "bytes=0-99")
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("at its expiry: %d", res.StatusCode)
		}
		if res, _ := a.get(t, media, "Range", "bytes=0-99"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("an older URL after its expiry: %d", res.StatusCode)
		}
	})

	t.Run("removed from the chat", func(t *testing.T) {
		code, _, fresh := a.mediaURL(t, bob, wav)
		if code != http.StatusOK {
			t.Fatalf("media URL: %d", code)
		}
		if res, _ := a.get(t, fresh, "Range", "bytes=0-99"); res.StatusCode != http.StatusPartialContent {
			t.Fatalf("before: %d", res.StatusCode)
		}
		if code, _, out := a.do(t, "DELETE", "/chats/"+url.PathEscape(chatName)+"/members/bob", alice, "", ""); code/100 != 2 {
			t.Fatalf("remove bob: %d %v", code, out)
		}
		res, body := a.get(t, fresh, "Range", "bytes=0-99")
		if res.StatusCode != http.StatusNotFound || bytes.Contains(body, tone[44:99]) {
			t.Fatalf("after bob was removed: %d %s", res.StatusCode, body)
		}
		// Added back, the same URL plays again: it is the membership of
		// now that counts.
		if code, _, out := a.do(t, "POST", "/chats/"+url.PathEscape(chatName)+"/members", alice, "application/json", `{"members":["bob"]}`); code/100 != 2 {
			t.Fatalf("add bob: %d %v", code, out)
		}
		if res, _ := a.get(t, fresh, "Range", "bytes=0-99"); res.StatusCode != http.StatusPartialContent {
			t.Fatalf("added back: %d", res.StatusCode)
		}
	})

	t.Run("logged out", func(t *testing.T) {
		code, _, fresh := a.mediaURL(t, bob, wav)
		if code != http.StatusOK {
			t.Fatalf("media URL: %d", code)
		}
		if code, _, _ := a.do(t, "POST", "/logout/", bob, "", ""); code/100 != 2 {
			t.Fatalf("logout: %d", code)
		}
		if res, _ := a.get(t, fresh, "Range", "bytes=0-99"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after its session ended: %d", res.StatusCode)
		}
	})

	logs := a.logs.String()
	if !strings.Contains(logs, "/media") || !strings.Contains(logs, "sig=REDACTED") {
		t.Errorf("the media requests are not in the log as expected:\n%s", logs)
	}
	for _, secret := range []string{sig, sig[:20], sig[len(sig)-20:]} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a media token reached the log:\n%s", logs)
		}
	}
}
