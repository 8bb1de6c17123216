package files_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/files"
)

func pngBytes(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestSniff(t *testing.T) {
	webp := solidWebP(8, 8, color.NRGBA{1, 2, 3, 255})
	if got := http.DetectContentType(webp); got != "image/webp" {
		t.Logf("note: this Go's DetectContentType says %q for WebP; Sniff detects it itself", got)
	}
	text := []byte("name,amount\nann,3\n")
	binary := []byte{0, 1, 2, 3, 0xff, 0xfe, 0, 0}
	tests := []struct {
		name     string
		head     []byte
		declared string
		want     string
	}{
		{"PNG", pngBytes(t), "", "image/png"},
		{"PNG declared HTML", pngBytes(t), "text/html", "image/png"},
		{"WebP", webp, "application/octet-stream", "image/webp"},
		{"WebP declared SVG", webp, "image/svg+xml", "image/webp"},
		{"HTML", []byte("<!DOCTYPE html><script>alert(1)</script>"), "", "application/octet-stream"},
		{"HTML declared text/plain", []byte("<html><body onload=alert(1)>"), "text/plain", "application/octet-stream"},
		{"HTML declared image/png", []byte("<html><body onload=alert(1)>"), "image/png", "application/octet-stream"},
		{"XML", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`), "image/svg+xml", "application/octet-stream"},
		{"SVG without prolog", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "image/svg+xml", "application/octet-stream"},
		{"text declared JavaScript", []byte("alert(document.cookie)"), "text/javascript", "application/octet-stream"},
		{"text declared CSS", []byte("body{background:url(x)}"), "text/css", "application/octet-stream"},
		{"text declared XHTML", []byte("hello"), "application/xhtml+xml", "application/octet-stream"},
		{"text declared CSV", text, "text/csv", "text/csv; charset=utf-8"},
		{"text declared CSV with charset", text, "text/csv; charset=ISO-8859-1", "text/csv; charset=iso-8859-1"},
		{"text declared Markdown with odd case", text, "Text/Markdown", "text/markdown; charset=utf-8"},
		{"text, nothing declared", text, "", "text/plain; charset=utf-8"},
		{"text declared garbage", text, "not a type", "text/plain; charset=utf-8"},
		{"text declared wildcard", text, "*/*", "text/plain; charset=utf-8"},
		{"binary declared PDF", binary, "application/pdf", "application/pdf"},
		{"binary declared docx", binary, "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
			"application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"binary declared with parameters", binary, "application/x-foo; name=evil", "application/x-foo"},
		{"binary declared image/*", binary, "image/*", "application/octet-stream"},
		{"binary declared script", binary, "application/x-javascript", "application/octet-stream"},
		{"binary, nothing declared", binary, "", "application/octet-stream"},
		{"PDF", []byte("%PDF-1.7\n"), "text/html", "application/pdf"},
		{"empty", nil, "text/html", "application/octet-stream"},
		{"long head", append(pngBytes(t), make([]byte, 4096)...), "", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := files.Sniff(tt.head, tt.declared); got != tt.want {
				t.Fatalf("Sniff(%q) = %q, want %q", tt.declared, got, tt.want)
			}
		})
	}
}

func TestServeType(t *testing.T) {
	tests := []struct{ stored, want string }{
		{"image/png", "image/png"},
		{"image/webp", "image/webp"},
		{"application/pdf", "application/pdf"},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8"},
		{"text/csv", "text/csv"},
		{"text/html", "application/octet-stream"},
		{"TEXT/HTML; charset=utf-8", "application/octet-stream"},
		{"application/xhtml+xml", "application/octet-stream"},
		{"image/svg+xml", "application/octet-stream"},
		{"text/xml", "application/octet-stream"},
		{"application/xml", "application/octet-stream"},
		{"application/javascript", "application/octet-stream"},
		{"text/ecmascript", "application/octet-stream"},
		{"text/css", "application/octet-stream"},
		{"", "application/octet-stream"},
		{"garbage", "application/octet-stream"},
		{"image/png\r\nX-Evil: 1", "application/octet-stream"},
		{"*/*", "application/octet-stream"},
	}
	for _, tt := range tests {
		if got := files.ServeType(tt.stored); got != tt.want {
			t.Errorf("ServeType(%q) = %q, want %q", tt.stored, got, tt.want)
		}
	}
}

func TestIsRaster(t *testing.T) {
	for _, typ := range []string{"image/png", "image/jpeg", "image/gif", "image/webp"} {
		if !files.IsRaster(typ) {
			t.Errorf("IsRaster(%q) = false", typ)
		}
	}
	for _, typ := range []string{"image/svg+xml", "image/bmp", "image/tiff", "image/x-icon", "image/avif", "image/heic",
		"application/octet-stream", "text/plain", "", "image/png2", "image"} {
		if files.IsRaster(typ) {
			t.Errorf("IsRaster(%q) = true", typ)
		}
	}
	// Every raster type survives the way back out.
	for _, typ := range []string{"image/png", "image/jpeg", "image/gif", "image/webp"} {
		if got := files.ServeType(typ); !strings.EqualFold(got, typ) {
			t.Errorf("ServeType(%q) = %q", typ, got)
		}
	}
}

func TestIsMedia(t *testing.T) {
	for _, typ := range []string{"audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "application/ogg", "video/webm", "video/mp4", "Video/MP4"} {
		if !files.IsMedia(typ) {
			t.Errorf("IsMedia(%q) = false", typ)
		}
	}
	for _, typ := range []string{"image/png", "application/pdf", "text/html", "image/svg+xml", "application/octet-stream", "", "audio", "audio/*", "video/"} {
		if files.IsMedia(typ) {
			t.Errorf("IsMedia(%q) = true", typ)
		}
	}
}
