package files_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/files"
	"golang.org/x/image/webp"
)

const (
	testMaxPixels = 40_000_000
	testSide      = 320
)

// gradient returns a w×h image with a horizontal colour ramp; with
// transparent set, its left half is see-through.
func gradient(w, h int, transparent bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if transparent && x < w/2 {
				a = 0
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, a})
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// twoFrameGIF is an animated GIF whose first frame is red and second blue.
func twoFrameGIF(t *testing.T, w, h int) []byte {
	t.Helper()
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	red := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	blue := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for i := range blue.Pix {
		blue.Pix[i] = 1
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{red, blue}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// smallFirstFrameGIF is a GIF whose 400×200 screen is only partly covered
// by its first (and only) frame, a 100×100 green square in the middle.
func smallFirstFrameGIF(t *testing.T) []byte {
	t.Helper()
	pal := color.Palette{color.RGBA{0, 255, 0, 255}}
	frame := image.NewPaletted(image.Rect(150, 50, 250, 150), pal)
	var b bytes.Buffer
	err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 400, Height: 200}})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withAPP1 inserts n bytes of APP1 metadata (as EXIF would be) after the
// JPEG's start marker, k times, pushing its size far past the first 4 KiB.
func withAPP1(jpg []byte, n, k int) []byte {
	out := append([]byte{}, jpg[:2]...)
	for range k {
		seg := make([]byte, 4+n)
		seg[0], seg[1] = 0xff, 0xe1
		binary.BigEndian.PutUint16(seg[2:], uint16(n+2))
		out = append(out, seg...)
	}
	return append(out, jpg[2:]...)
}

func TestThumbnail(t *testing.T) {
	tests := []struct {
		name          string
		data          []byte
		mime          string
		w, h          int
		srcW, srcH    int
		transparent   bool
		firstPixelRGB *[3]uint8 // roughly expected colour of the thumbnail's centre
	}{
		{name: "PNG with alpha", data: encodePNG(t, gradient(800, 600, true)), mime: "image/png",
			w: 320, h: 240, srcW: 800, srcH: 600, transparent: true},
		{name: "opaque PNG becomes JPEG", data: encodePNG(t, gradient(640, 640, false)), mime: "image/jpeg",
			w: 320, h: 320, srcW: 640, srcH: 640},
		{name: "JPEG", data: encodeJPEG(t, gradient(1000, 500, false)), mime: "image/jpeg",
			w: 320, h: 160, srcW: 1000, srcH: 500},
		{name: "JPEG with large metadata", data: withAPP1(encodeJPEG(t, gradient(400, 300, false)), 60_000, 3), mime: "image/jpeg",
			w: 320, h: 240, srcW: 400, srcH: 300},
		{name: "tall JPEG", data: encodeJPEG(t, gradient(300, 1200, false)), mime: "image/jpeg",
			w: 80, h: 320, srcW: 300, srcH: 1200},
		{name: "small image is not enlarged", data: encodePNG(t, gradient(100, 50, false)), mime: "image/jpeg",
			w: 100, h: 50, srcW: 100, srcH: 50},
		{name: "thin line keeps a pixel", data: encodePNG(t, gradient(5000, 1, false)), mime: "image/jpeg",
			w: 320, h: 1, srcW: 5000, srcH: 1},
		{name: "animated GIF uses the first frame", data: twoFrameGIF(t, 400, 200), mime: "image/jpeg",
			w: 320, h: 160, srcW: 400, srcH: 200, firstPixelRGB: &[3]uint8{255, 0, 0}},
		{name: "GIF whose first frame is smaller than the screen", data: smallFirstFrameGIF(t), mime: "image/png",
			w: 320, h: 160, srcW: 400, srcH: 200, transparent: true, firstPixelRGB: &[3]uint8{0, 255, 0}},
		{name: "WebP lossless with alpha", data: solidWebP(640, 400, color.NRGBA{0x10, 0x80, 0xf0, 0x80}), mime: "image/png",
			w: 320, h: 200, srcW: 640, srcH: 400, transparent: true},
		{name: "WebP opaque", data: solidWebP(64, 48, color.NRGBA{0, 200, 0, 255}), mime: "image/jpeg",
			w: 64, h: 48, srcW: 64, srcH: 48, firstPixelRGB: &[3]uint8{0, 200, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A reader without Peek or Seek, as an upload body is.
			th, err := files.Thumbnail(struct{ io.Reader }{bytes.NewReader(tt.data)}, testMaxPixels, testSide)
			if err != nil {
				t.Fatal(err)
			}
			if th.MimeType != tt.mime || th.Width != tt.w || th.Height != tt.h || th.SourceWidth != tt.srcW || th.SourceHeight != tt.srcH {
				t.Fatalf("got %s %d×%d from %d×%d, want %s %d×%d from %d×%d",
					th.MimeType, th.Width, th.Height, th.SourceWidth, th.SourceHeight, tt.mime, tt.w, tt.h, tt.srcW, tt.srcH)
			}
			var img image.Image
			var format string
			img, format, err = image.Decode(bytes.NewReader(th.Data))
			if err != nil {
				t.Fatalf("thumbnail does not decode: %v", err)
			}
			if "image/"+format != tt.mime {
				t.Fatalf("thumbnail is %s, labelled %s", format, tt.mime)
			}
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Fatalf("thumbnail decodes as %v", b)
			}
			if tt.transparent {
				_, _, _, a := img.At(0, tt.h/2).RGBA()
				if a == 0xffff {
					t.Fatal("transparency lost")
				}
			}
			if c := tt.firstPixelRGB; c != nil {
				r, g, b, _ := img.At(tt.w/2, tt.h/2).RGBA()
				if diff(r>>8, c[0]) > 12 || diff(g>>8, c[1]) > 12 || diff(b>>8, c[2]) > 12 {
					t.Fatalf("centre pixel is %d,%d,%d, want about %v", r>>8, g>>8, b>>8, *c)
				}
			}
		})
	}
}

func diff(a uint32, b uint8) uint32 {
	if a > uint32(b) {
		return a - uint32(b)
	}
	return uint32(b) - a
}

// gifHeader returns a GIF header claiming a w×h logical screen.
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0)
}

// jpegHeader returns a JPEG start, a baseline SOF claiming w×h and the
// start of a scan.
func jpegHeader(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xc0, 0, 11, 8}
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	return append(b, 1, 1, 0x11, 0, 0xff, 0xda, 0, 8)
}

// webpVP8XHeader returns an extended WebP header claiming a w×h canvas.
func webpVP8XHeader(w, h uint32) []byte {
	p := make([]byte, 10)
	p[0] = 0x10 // alpha
	p[4], p[5], p[6] = byte(w-1), byte((w-1)>>8), byte((w-1)>>16)
	p[7], p[8], p[9] = byte(h-1), byte((h-1)>>8), byte((h-1)>>16)
	return riff("VP8X", p)
}

func TestThumbnailRefusesBombs(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		dims string
	}{
		{"PNG 100000×100000", pngHeader(100000, 100000), "100000×100000"},
		{"PNG just over the limit", pngHeader(8000, 5001), "8000×5001"},
		{"GIF 65535×65535", gifHeader(65535, 65535), "65535×65535"},
		{"JPEG 65500×65500", jpegHeader(65500, 65500), "65500×65500"},
		{"WebP 16384×16384", webpVP8XHeader(16384, 16384), "16384×16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The header is followed by an endless stream, as a bomb's
			// compressed body would be: nothing past the header may be read.
			body := &countingReader{}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := files.Thumbnail(io.MultiReader(bytes.NewReader(tt.data), body), testMaxPixels, testSide)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, files.ErrTooManyPixels) {
				t.Fatalf("Thumbnail = %v, want ErrTooManyPixels", err)
			}
			if !strings.Contains(err.Error(), tt.dims) {
				t.Fatalf("error %q does not name the size %s", err, tt.dims)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Fatalf("refusing the bomb allocated %d bytes", alloc)
			}
			if body.n > 64<<10 {
				t.Fatalf("read %d bytes past the header", body.n)
			}
		})
	}
}

// TestImageSize: the size comes from the header alone, for real images and
// for bombs alike, without reading what follows it; what is not an image
// of a known format is an error.
func TestImageSize(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		w, h int
	}{
		{"PNG", encodePNG(t, gradient(800, 600, true)), 800, 600},
		{"JPEG with large metadata", withAPP1(encodeJPEG(t, gradient(400, 300, false)), 60_000, 3), 400, 300},
		{"GIF", twoFrameGIF(t, 40, 20), 40, 20},
		{"WebP", solidWebP(64, 48, color.NRGBA{0, 200, 0, 255}), 64, 48},
		{"PNG bomb", pngHeader(100000, 100000), 100000, 100000},
		{"JPEG bomb", jpegHeader(65500, 65500), 65500, 65500},
		{"WebP bomb", webpVP8XHeader(16384, 16384), 16384, 16384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{}
			w, h, err := files.ImageSize(io.MultiReader(bytes.NewReader(tt.data), body))
			if err != nil || w != tt.w || h != tt.h {
				t.Fatalf("ImageSize = %d×%d, %v; want %d×%d", w, h, err, tt.w, tt.h)
			}
			if body.n > 64<<10 {
				t.Fatalf("read %d bytes past the header", body.n)
			}
		})
	}
	for _, data := range [][]byte{nil, []byte("hello, this is text"), pngHeader(0, 0), withAPP1([]byte{0xff, 0xd8}, 65000, 80)} {
		if w, h, err := files.ImageSize(bytes.NewReader(data)); err == nil {
			t.Fatalf("ImageSize(%.20q) = %d×%d, want an error", data, w, h)
		}
	}
}

// countingReader is an endless stream of zeros that counts what is read.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	clear(p)
	c.n += len(p)
	return len(p), nil
}

func TestThumbnailErrors(t *testing.T) {
	good := encodePNG(t, gradient(50, 50, false))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not an image", []byte("hello, this is text")},
		{"SVG", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`)},
		{"BMP", append([]byte("BM"), make([]byte, 60)...)},
		{"PNG of zero size", pngHeader(0, 0)},
		{"PNG too large to count", pngHeader(1<<31-1, 1<<31-1)},
		{"PNG header only", pngHeader(10, 10)},
		{"truncated PNG", good[:len(good)/2]},
		{"endless JPEG metadata", withAPP1([]byte{0xff, 0xd8}, 65000, 80)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := files.Thumbnail(bytes.NewReader(tt.data), testMaxPixels, testSide)
			if err == nil {
				t.Fatal("Thumbnail succeeded")
			}
			if errors.Is(err, files.ErrTooManyPixels) {
				t.Fatalf("Thumbnail = %v, which is not about pixels", err)
			}
		})
	}
	if _, err := files.Thumbnail(bytes.NewReader(good), 0, testSide); err == nil {
		t.Fatal("Thumbnail with maxPixels 0 succeeded")
	}
}

// TestSolidWebP checks the test's own WebP writer against the decoder.
func TestSolidWebP(t *testing.T) {
	img, err := webp.Decode(bytes.NewReader(solidWebP(3, 2, color.NRGBA{1, 2, 3, 4})))
	if err != nil {
		t.Fatal(err)
	}
	if got := color.NRGBAModel.Convert(img.At(2, 1)); got != (color.NRGBA{1, 2, 3, 4}) {
		t.Fatalf("pixel %v", got)
	}
}

func BenchmarkThumbnail(b *testing.B) {
	var buf bytes.Buffer
	jpeg.Encode(&buf, gradient(4000, 3000, false), nil)
	data := buf.Bytes()
	for b.Loop() {
		if _, err := files.Thumbnail(bytes.NewReader(data), testMaxPixels, testSide); err != nil {
			b.Fatal(err)
		}
	}
}
