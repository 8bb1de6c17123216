package files

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
)

const octetStream = "application/octet-stream"

// Sniff returns the MIME type to store for a file whose first bytes are head
// and whose client declared the type declared. The content decides: the
// client's type is used only when sniffing finds nothing more specific than
// application/octet-stream or text/plain (a CSV, a Markdown file, an Office
// document), and never when it is a type a browser would run or render
// (HTML, SVG, XML, script, style), since a stored file is served from the
// chat's own origin. Active types, sniffed or declared, are stored as
// application/octet-stream.
func Sniff(head []byte, declared string) string {
	if len(head) > 512 {
		head = head[:512]
	}
	var sniffed string
	if isWebP(head) {
		// Sniffed ourselves as well: not every Go release's
		// DetectContentType knows WebP.
		sniffed = "image/webp"
	} else {
		sniffed = http.DetectContentType(head)
	}
	base, params, err := mime.ParseMediaType(sniffed)
	if err != nil {
		return octetStream
	}
	if base != octetStream && base != "text/plain" {
		return normalType(base, params)
	}
	if dBase, dParams, ok := parseDeclared(declared); ok && dBase != octetStream {
		if base == "text/plain" && strings.HasPrefix(dBase, "text/") && dParams["charset"] == "" && params["charset"] != "" {
			// The client named the kind of text; the sniffer knows its encoding.
			dParams = map[string]string{"charset": params["charset"]}
		}
		return normalType(dBase, dParams)
	}
	return normalType(base, params)
}

// isWebP reports whether head starts like a WebP file (RIFF....WEBP).
func isWebP(head []byte) bool {
	return len(head) >= 12 && bytes.Equal(head[:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WEBP"))
}

// parseDeclared parses a client's Content-Type, accepting only a concrete
// type/subtype (no wildcards, nothing absurdly long).
func parseDeclared(declared string) (string, map[string]string, bool) {
	if declared == "" || len(declared) > 255 {
		return "", nil, false
	}
	base, params, err := mime.ParseMediaType(declared)
	if err != nil {
		return "", nil, false
	}
	top, sub, ok := strings.Cut(base, "/")
	if !ok || top == "" || sub == "" || top == "*" || sub == "*" {
		return "", nil, false
	}
	return base, params, true
}

// normalType formats a parsed type in one canonical form: lower case, only
// a charset parameter and only on text, active types replaced.
func normalType(base string, params map[string]string) string {
	if active(base) {
		return octetStream
	}
	var keep map[string]string
	if cs := params["charset"]; cs != "" && strings.HasPrefix(base, "text/") {
		keep = map[string]string{"charset": strings.ToLower(cs)}
	}
	t := mime.FormatMediaType(base, keep)
	if t == "" {
		return octetStream
	}
	return t
}

// active reports whether a browser given a response of this (lower-case,
// parameterless) type could run script or render markup that can, or apply
// it as a style sheet: markup, XML of every kind (SVG, XHTML, XSLT, feeds),
// script under any of its names, CSS, and the old plug-in formats.
func active(base string) bool {
	switch base {
	case "text/html", "text/xml", "text/xsl", "text/css", "text/x-component",
		"application/xml", "application/x-shockwave-flash", "application/futuresplash",
		"application/hta", "text/cache-manifest", "multipart/x-mixed-replace":
		return true
	}
	return strings.HasSuffix(base, "+xml") || strings.HasSuffix(base, "/xml") ||
		strings.Contains(base, "html") || strings.Contains(base, "script") ||
		strings.Contains(base, "svg")
}

// IsRaster reports whether a stored type is one of the raster image formats
// that Thumbnail decodes (PNG, JPEG, GIF, WebP), and so one that may be
// previewed. Vector and exotic formats are not: SVG is active content, and
// every other decoder is attack surface the server does not need.
func IsRaster(mimeType string) bool {
	base, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return false
	}
	switch base {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// IsMedia reports whether a stored type is audio or video, which a media
// element plays (Ogg, which sniffing names application/ogg, included).
func IsMedia(mimeType string) bool {
	base, _, err := mime.ParseMediaType(ServeType(mimeType))
	if err != nil {
		return false
	}
	return strings.HasPrefix(base, "audio/") || strings.HasPrefix(base, "video/") || base == "application/ogg"
}

// ServeType returns the Content-Type to send with a stored file. It checks
// the stored type again rather than trusting the database: anything active
// or unparseable is sent as application/octet-stream, which a browser only
// downloads (with X-Content-Type-Options: nosniff set by the caller).
func ServeType(stored string) string {
	base, params, err := mime.ParseMediaType(stored)
	if err != nil {
		return octetStream
	}
	if _, _, ok := parseDeclared(base); !ok {
		return octetStream
	}
	return normalType(base, params)
}
