package files_test

import (
	"mime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/files"
)

// checkCleanName asserts what must hold for every cleaned name.
func checkCleanName(t *testing.T, in, got string) {
	t.Helper()
	switch {
	case got == "" || got == "." || got == "..":
		t.Fatalf("CleanName(%q) = %q", in, got)
	case len(got) > 255:
		t.Fatalf("CleanName(%q) is %d bytes", in, len(got))
	case !utf8.ValidString(got):
		t.Fatalf("CleanName(%q) = %q is not valid UTF-8", in, got)
	case strings.ContainsAny(got, `/\`):
		t.Fatalf("CleanName(%q) = %q contains a path separator", in, got)
	case strings.HasPrefix(got, ".") || strings.HasSuffix(got, ".") || strings.TrimSpace(got) != got:
		t.Fatalf("CleanName(%q) = %q starts or ends with a dot or space", in, got)
	case files.CleanName(got) != got:
		t.Fatalf("CleanName is not idempotent on %q", got)
	}
	for _, r := range got {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			t.Fatalf("CleanName(%q) = %q keeps invisible %U", in, got, r)
		}
	}
}

// checkContentDisposition asserts what must hold for every header value
// ContentDisposition builds: plain printable ASCII (nothing can end the
// header), and both filename parameters parse back to the cleaned name,
// the ASCII one with '_' for what it cannot carry.
func checkContentDisposition(t *testing.T, inline bool, in, got string) {
	t.Helper()
	for i := 0; i < len(got); i++ {
		if got[i] < 0x20 || got[i] > 0x7e {
			t.Fatalf("ContentDisposition(%q) = %q has byte %#x", in, got, got[i])
		}
	}
	disp, params, err := mime.ParseMediaType(got)
	if err != nil {
		t.Fatalf("ContentDisposition(%q) = %q does not parse: %v", in, got, err)
	}
	if want := map[bool]string{true: "inline", false: "attachment"}[inline]; disp != want {
		t.Fatalf("ContentDisposition(%q) = %q: disposition %q, want %q", in, got, disp, want)
	}
	name := files.CleanName(in)
	if params["filename"] != name {
		t.Fatalf("ContentDisposition(%q) = %q: filename* decodes to %q, want %q", in, got, params["filename"], name)
	}
	// A client that knows only the plain filename parameter. The
	// filename* value percent-encodes ';', so the last one is the real one.
	cut := strings.LastIndex(got, "; filename*=")
	if cut < 0 {
		t.Fatalf("ContentDisposition(%q) = %q has no filename*", in, got)
	}
	_, params, err = mime.ParseMediaType(got[:cut])
	if err != nil {
		t.Fatalf("ContentDisposition(%q) = %q: the plain filename does not parse: %v", in, got, err)
	}
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			return '_'
		}
		return r
	}, name)
	if params["filename"] != ascii {
		t.Fatalf("ContentDisposition(%q) = %q: filename is %q, want %q", in, got, params["filename"], ascii)
	}
}

func TestCleanName(t *testing.T) {
	longASCII := strings.Repeat("a", 996) + ".txt"
	longCJK := strings.Repeat("文", 332) + ".pdf" // 996 + 4 bytes
	tests := []struct {
		name  string
		in    string
		want  string // "" to check only the properties and check
		check func(t *testing.T, got string)
	}{
		{name: "plain", in: "report.pdf", want: "report.pdf"},
		{name: "unicode kept", in: "Résumé 履歴書 😀.pdf", want: "Résumé 履歴書 😀.pdf"},
		{name: "unix traversal", in: "../../etc/passwd", want: "passwd"},
		{name: "windows traversal", in: `..\..\boot.ini`, want: "boot.ini"},
		{name: "absolute path", in: "/home/ann/photo.jpg", want: "photo.jpg"},
		{name: "mixed separators", in: `C:\Users/ann\x.doc`, want: "x.doc"},
		{name: "trailing separator", in: "folder/", want: "file"},
		{name: "NUL", in: "evil.php\x00.jpg", want: "evil.php.jpg"},
		{name: "control characters", in: "re\x01po\x1brt\t\r\n\x7f\u0085.pdf", want: "report.pdf"},
		{name: "RTL override", in: "invoice\u202Egpj.exe", want: "invoicegpj.exe"},
		{name: "bidi isolates and marks", in: "\u2067a\u200Fb\u200E\u202Ac\u202D\u2069.txt", want: "abc.txt"},
		{name: "zero-width and BOM", in: "\ufeffpay\u200bpal\u200d.html", want: "paypal.html"},
		{name: "line separator", in: "a\u2028b\u2029.txt", want: "ab.txt"},
		{name: "invalid UTF-8", in: "a\xffb.txt", want: "a\uFFFDb.txt"},
		{name: "empty", in: "", want: "file"},
		{name: "dot", in: ".", want: "file"},
		{name: "dot dot", in: "..", want: "file"},
		{name: "dots and spaces", in: " . .. ", want: "file"},
		{name: "only controls", in: "\x00\x01\u202E", want: "file"},
		{name: "trailing dots and spaces", in: "  report.pdf. . ", want: "report.pdf"},
		{name: "hidden file", in: ".htaccess", want: "htaccess"},
		{name: "long ASCII keeps extension", in: longASCII, check: func(t *testing.T, got string) {
			if len(got) != 255 || !strings.HasSuffix(got, ".txt") {
				t.Fatalf("got %d bytes ending %q", len(got), got[len(got)-5:])
			}
		}},
		{name: "long CJK keeps extension", in: longCJK, check: func(t *testing.T, got string) {
			if len(got) < 253 || !strings.HasSuffix(got, ".pdf") {
				t.Fatalf("got %d bytes ending %q", len(got), got[len(got)-5:])
			}
		}},
		{name: "long CJK without extension", in: strings.Repeat("文", 334), check: func(t *testing.T, got string) {
			if len(got) != 255 || utf8.RuneCountInString(got) != 85 {
				t.Fatalf("got %d bytes, %d runes", len(got), utf8.RuneCountInString(got))
			}
		}},
		{name: "long extension is not one", in: "a." + strings.Repeat("b", 998), check: func(t *testing.T, got string) {
			if len(got) != 255 || !strings.HasPrefix(got, "a.bbb") {
				t.Fatalf("got %d bytes starting %q", len(got), got[:5])
			}
		}},
		{name: "long name of dots", in: strings.Repeat(".", 300) + "x", want: "x"},
		{name: "long path", in: strings.Repeat("../", 400) + "ok.txt", want: "ok.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := files.CleanName(tt.in)
			checkCleanName(t, tt.in, got)
			if tt.want != "" && got != tt.want {
				t.Fatalf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// FuzzCleanName checks the rules of CleanName and of the header built from
// its result on arbitrary names, as an upload may send them.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{
		"", ".", "a/b", `a\..\b`, "x\u202Eexe.txt", "\xff\xfe", strings.Repeat("文", 100) + ".jpg",
		strings.Repeat("a", 300) + ".tar.gz", strings.Repeat("é", 200) + "." + strings.Repeat("x", 31),
		`say "hi"; filename*=UTF-8''evil.exe`, "100%.txt", "a\u2028b\u2029c\u00adD\U000E0041.pdf",
		" \u3000.\u00a0hidden. ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkCleanName(t, in, files.CleanName(in))
		for _, inline := range []bool{false, true} {
			checkContentDisposition(t, inline, in, files.ContentDisposition(inline, in))
		}
	})
}

func TestContentDisposition(t *testing.T) {
	tests := []struct {
		inline bool
		name   string
		want   string
	}{
		{false, "report.pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{true, "photo 1.jpg", `inline; filename="photo 1.jpg"; filename*=UTF-8''photo%201.jpg`},
		{false, `say "hi" \ bye.txt`, `attachment; filename="bye.txt"; filename*=UTF-8''bye.txt`},
		{false, `say "hi".txt`, `attachment; filename="say _hi_.txt"; filename*=UTF-8''say%20%22hi%22.txt`},
		{false, "résumé.pdf", `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
		{false, "履歴書.pdf", `attachment; filename="___.pdf"; filename*=UTF-8''%E5%B1%A5%E6%AD%B4%E6%9B%B8.pdf`},
		{false, "100%;a=b,c.txt", `attachment; filename="100_;a=b,c.txt"; filename*=UTF-8''100%25%3Ba%3Db%2Cc.txt`},
		{false, "a\r\nSet-Cookie: x=y", `attachment; filename="aSet-Cookie: x=y"; filename*=UTF-8''aSet-Cookie%3A%20x%3Dy`},
		{false, "", `attachment; filename="file"; filename*=UTF-8''file`},
		{false, "its!#$&+-^_`|~.txt", "attachment; filename=\"its!#$&+-^_`|~.txt\"; filename*=UTF-8''its!#$&+-^_`|~.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := files.ContentDisposition(tt.inline, tt.name)
			if got != tt.want {
				t.Fatalf("ContentDisposition(%v, %q) =\n  %s\nwant\n  %s", tt.inline, tt.name, got, tt.want)
			}
			checkContentDisposition(t, tt.inline, tt.name, got)
		})
	}
}
