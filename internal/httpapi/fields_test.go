package httpapi

// An internal test: readFields is fed bodies directly, without a route or a
// store in front of it, so that the fuzzer spends its time in the decoding.

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// fields calls readFields on a POST with the given content type and body.
func fields(tb testing.TB, contentType string, body []byte) (map[string][]string, error) {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, "/chats/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	f, err := readFields(httptest.NewRecorder(), r)
	if r.MultipartForm != nil {
		r.MultipartForm.RemoveAll()
	}
	return f, err
}

// FuzzReadFields feeds arbitrary bodies under arbitrary content types to
// the decoding every form and JSON route shares.
func FuzzReadFields(f *testing.F) {
	const mp = "multipart/form-data; boundary=xYz"
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"kind":"group","title":"Ops","members":["bob","carol"]}`},
		{"application/json; charset=utf-8", `{"message_id":42,"admin":true,"email":null}`},
		{"application/json", `{"members":[]}`},
		{"application/json", `{"n":-0,"big":12345678901234567890,"f":1.5,"e":1e3}`},
		{"application/json", `{"a":"x","a":"y"}`},
		{"application/json", `{"a":{"b":1}}`},
		{"application/json", `{"a":"b"} {"a":"c"}`},
		{"application/json", `{"a":[null]}`},
		{"application/json", "{ \"a\" : null ,\t\"b\" :\n[ \"x\" , \"y\" ] , \"c\": true }"},
		{"application/json", `null`},
		{"application/json", `"\ud800\u0000"`},
		{"application/x-www-form-urlencoded", "username=alice&password=correct+horse%20battery&members=a&members=b"},
		{"application/x-www-form-urlencoded", "a=%zz;b=1"},
		{"", "username=alice"},
		{mp, "--xYz\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\nglobal\r\n--xYz--\r\n"},
		{mp, "--xYz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--xYz--\r\n"},
		{"multipart/form-data", "--\r\n"},
		{"text/plain", "hello"},
		{"application/json; charset", `{}`},
		{"application/json", `{"a":"` + strings.Repeat("x", maxFormBytes) + `"}`},
		{"application/json", `{"a":"b"}` + strings.Repeat(" ", maxFormBytes)},
		{"application/x-www-form-urlencoded", "a=" + strings.Repeat("x", maxFormBytes)},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		got, err := fields(t, contentType, body)
		mt, _, _ := mime.ParseMediaType(contentType)
		if err != nil {
			var ce *chat.Error
			if !errors.As(err, &ce) || ce.Message == "" {
				t.Fatalf("refused with %#v, want a chat.Error with a sentence", err)
			}
			switch ce.Code {
			case chat.EInvalid:
			case chat.ETooLarge:
				if len(body) <= maxFormBytes {
					t.Fatalf("a body of %d bytes refused as too large", len(body))
				}
			default:
				t.Fatalf("refused with code %q (status %d), want invalid or too_large", ce.Code, statusFor(ce.Code))
			}
			return
		}
		switch mt {
		case "application/json":
			checkJSONFields(t, body, got)
		case "application/x-www-form-urlencoded":
			want, err := url.ParseQuery(string(body))
			if err != nil {
				t.Fatalf("accepted a form url.ParseQuery refuses: %v", err)
			}
			if len(want) != len(got) || (len(want) > 0 && !reflect.DeepEqual(map[string][]string(want), got)) {
				t.Fatalf("form read as %q, want %q", got, want)
			}
		}
	})
}

// checkJSONFields asserts that an accepted JSON body was one object and
// that every field has exactly the value the JSON gave it.
func checkJSONFields(t *testing.T, body []byte, got map[string][]string) {
	t.Helper()
	if len(body) > maxFormBytes {
		t.Fatalf("accepted a JSON body of %d bytes", len(body))
	}
	if !json.Valid(body) {
		t.Fatalf("accepted %q, which is not one JSON value", body)
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		t.Fatalf("accepted %q, which is not a JSON object", body)
	}
	want := make(map[string][]string)
	for k, v := range raw {
		switch v := v.(type) {
		case nil:
		case string:
			want[k] = []string{v}
		case bool:
			want[k] = []string{map[bool]string{true: "true", false: "false"}[v]}
		case json.Number:
			if _, err := v.Int64(); err != nil {
				t.Fatalf("accepted %s, which is not a whole number, for %q", v, k)
			}
			want[k] = []string{v.String()}
		case []any:
			list := []string{}
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					t.Fatalf("accepted %q for %q, which is not a list of strings", v, k)
				}
				list = append(list, s)
			}
			want[k] = list
		default:
			t.Fatalf("accepted %T for %q", v, k)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s read as %q, want %q", body, got, want)
	}
}
