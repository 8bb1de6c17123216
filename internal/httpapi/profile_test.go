package httpapi_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
)

// MustPNG encodes a w×h PNG whose left half is red and right half blue.
func MustPNG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{255, 0, 0, 255}
			if x >= w/2 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// TestProfileRoutes: a user sets their own display name and avatar (there
// is no way to name another's), everyone signed in sees them, bad input is
// refused with a sentence, and a notification level is a member's own.
func TestProfileRoutes(t *testing.T) {
	t.Parallel()
	a := MustAPI(t)
	alice, bob := a.MustLogin(t, "alice"), a.MustLogin(t, "مریم")

	code, _, body := a.do(t, "PATCH", "/profile", alice, "application/json", `{"display_name":"  Alice Liddell  "}`)
	if code != http.StatusOK || body["display_name"] != "Alice Liddell" || body["username"] != "alice" {
		t.Fatalf("PATCH /profile = %d %v", code, body)
	}
	for _, bad := range []string{`{"display_name":"a\u0000b"}`, `{"display_name":"x\u202Ey"}`, `{"display_name":"` + strings.Repeat("ب", 65) + `"}`, `{}`} {
		if code, _, body := a.do(t, "PATCH", "/profile", alice, "application/json", bad); code != http.StatusBadRequest || body["detail"] == "" {
			t.Errorf("PATCH /profile %s = %d %v; want 400 with a sentence", bad, code, body)
		}
	}
	if code, _, _ := a.do(t, "PATCH", "/profile", "", "application/json", `{"display_name":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("PATCH /profile without a token = %d", code)
	}

	// Avatars: the image is decoded, cut square and re-encoded.
	req := func(method, path, token, ctype string, body []byte) *http.Response {
		r, _ := http.NewRequest(method, a.URL+path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		res, err := a.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	if res := req("PUT", "/profile/avatar", alice, "image/png", []byte("not an image at all")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a non-image = %d", res.StatusCode)
	}
	if res := req("PUT", "/profile/avatar", alice, "text/plain", MustPNG(t, 10, 10)); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a text/plain body = %d", res.StatusCode)
	}
	if res := req("PUT", "/profile/avatar", alice, "image/png", make([]byte, 9<<20)); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 9 MiB avatar = %d", res.StatusCode)
	}
	res := req("PUT", "/profile/avatar", alice, "image/png", MustPNG(t, 600, 300))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PUT /profile/avatar = %d", res.StatusCode)
	}
	_, _, me := a.do(t, "GET", "/profile", alice, "", "")
	path, _ := me["avatar"].(string)
	if !strings.HasPrefix(path, "/users/alice/avatar?v=") {
		t.Fatalf("profile after the avatar = %v", me)
	}
	got := req("GET", path, bob, "", nil)
	img, _ := io.ReadAll(got.Body)
	if got.StatusCode != http.StatusOK || got.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(got.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("GET avatar = %d %v", got.StatusCode, got.Header)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width != 256 || cfg.Height != 256 {
		t.Fatalf("served avatar = %s %d×%d, %v; want a 256-pixel square", format, cfg.Width, cfg.Height, err)
	}
	if res := req("GET", path, "", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("avatar without a token = %d", res.StatusCode)
	}

	// Bob sees her profile, and his own is found when spelled with the
	// Arabic yeh (مريم) rather than the Persian one (مریم).
	code, _, body = a.do(t, "GET", "/users/profiles?u=ALICE&u=%D9%85%D8%B1%D9%8A%D9%85&u=nobody", bob, "", "")
	users, _ := body["users"].([]any)
	if code != http.StatusOK || len(users) != 2 {
		t.Fatalf("GET /users/profiles = %d %v", code, body)
	}

	if res := req("DELETE", "/profile/avatar", alice, "", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE /profile/avatar = %d", res.StatusCode)
	}
	if res := req("GET", path, bob, "", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("a removed avatar = %d", res.StatusCode)
	}

	// Notification levels: the member's own, in the chat's answer.
	code, _, body = a.do(t, "POST", "/chats", alice, "application/json", `{"kind":"direct","members":["مریم"]}`)
	name, _ := body["name"].(string)
	if code/100 != 2 || name == "" {
		t.Fatalf("direct chat = %d %v", code, body)
	}
	code, _, body = a.do(t, "PUT", "/chats/"+name+"/notify", alice, "application/json", `{"notify":"mentions"}`)
	if code != http.StatusOK || body["notify"] != "mentions" {
		t.Fatalf("PUT notify = %d %v", code, body)
	}
	if _, _, body := a.do(t, "GET", "/chats/"+name, bob, "", ""); body["notify"] != "all" {
		t.Fatalf("bob's level = %v, want all", body["notify"])
	}
	if code, _, _ := a.do(t, "PUT", "/chats/"+name+"/notify", alice, "application/json", `{"notify":"loud"}`); code != http.StatusBadRequest {
		t.Fatalf("a bad level = %d", code)
	}
	carol := a.MustLogin(t, "carol")
	if code, _, _ := a.do(t, "PUT", "/chats/"+name+"/notify", carol, "application/json", `{"notify":"muted"}`); code != http.StatusForbidden {
		t.Fatalf("a non-member's level = %d", code)
	}
}
