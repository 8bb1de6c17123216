package files

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes is the longest name most file systems accept, so a
// downloaded file can be saved under the name it was shown with.
const maxNameBytes = 255

// maxExtBytes bounds what counts as an extension worth keeping when a long
// name is clipped; a "suffix" longer than this is just part of the name.
const maxExtBytes = 32

// CleanName turns a user-supplied file name into one that is safe to store,
// show and offer as a download name. It keeps only the last path element
// (a name is never a path, on any system), drops control characters and
// invisible format characters such as the bidi overrides that make
// "invoice\u202Egpj.exe" look like a JPEG, replaces invalid UTF-8, trims
// spaces and dots at both ends (so "." and ".." vanish and Windows cannot
// strip a trailing dot to reveal another extension), and clips to 255 bytes
// keeping the extension when it can. An empty result becomes "file".
func CleanName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, name)
	name = trimName(name)
	if len(name) > maxNameBytes {
		name = clipName(name)
	}
	if name == "" {
		return "file"
	}
	return name
}

// invisible reports whether r changes how a name looks or is split without
// being seen: control characters (Cc), format characters (Cf: bidi
// embeddings, overrides and isolates, zero-width spaces and joiners, the
// BOM, soft hyphens, tag characters) and the line and paragraph separators.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

func trimName(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
}

// clipName shortens name to maxNameBytes on a rune boundary. A short
// extension is kept, since it decides how the saved file opens.
func clipName(name string) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExtBytes {
		ext = name[i:]
		name = name[:i]
	}
	name = trimName(clipBytes(name, maxNameBytes-len(ext)))
	if name == "" {
		// Nothing of the name itself survives; the extension alone would
		// make a hidden file, so keep a stand-in.
		name = "file"
	}
	return name + ext
}

// clipBytes returns the longest prefix of s of at most n bytes that ends on
// a rune boundary.
func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ContentDisposition returns a Content-Disposition header value (RFC 6266)
// for serving a file under name: inline or as an attachment, with a quoted
// ASCII filename for old clients and an RFC 5987 filename* that carries the
// real UTF-8 name. The name is cleaned with CleanName first, and both forms
// are built so that nothing in it can end the header or add a parameter.
func ContentDisposition(inline bool, name string) string {
	name = CleanName(name)
	var b strings.Builder
	if inline {
		b.WriteString("inline")
	} else {
		b.WriteString("attachment")
	}
	b.WriteString(`; filename="`)
	for _, r := range name {
		// '%' is replaced because some clients percent-decode the plain
		// filename parameter (RFC 6266, appendix D).
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			r = '_'
		}
		b.WriteRune(r)
	}
	b.WriteString(`"; filename*=UTF-8''`)
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if attrChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
	return b.String()
}

// attrChar reports whether c may appear unescaped in an RFC 5987 value.
func attrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
