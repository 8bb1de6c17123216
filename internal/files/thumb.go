package files

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// maxHeaderBytes bounds how much of an image is read, and held, to find its
// dimensions. JPEG puts its size after the metadata segments (EXIF, ICC),
// which can be large but not this large in any real photo.
const maxHeaderBytes = 4 << 20

// thumbQuality is the JPEG quality of thumbnails: small files, no visible
// blocking at thumbnail size.
const thumbQuality = 80

// Thumb is a thumbnail and the size of the image it was made from.
type Thumb struct {
	Data                      []byte // the encoded thumbnail
	MimeType                  string // image/jpeg or image/png
	Width, Height             int    // of the thumbnail
	SourceWidth, SourceHeight int    // of the original image
}

// imageFormat is one format Thumbnail accepts. The decoders are called
// directly, not through image.Decode's registry, so that a format some
// other package registers is never reached with untrusted input.
type imageFormat struct {
	name         string
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

var imageFormats = []imageFormat{
	{"png", png.DecodeConfig, png.Decode},
	{"jpeg", jpeg.DecodeConfig, jpeg.Decode},
	{"gif", gif.DecodeConfig, gif.Decode}, // gif.Decode returns the first frame
	{"webp", webp.DecodeConfig, webp.Decode},
}

// formatOf picks the decoder from the file's magic number.
func formatOf(head []byte) (imageFormat, bool) {
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return imageFormats[0], true
	case bytes.HasPrefix(head, []byte("\xff\xd8")):
		return imageFormats[1], true
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return imageFormats[2], true
	case isWebP(head):
		return imageFormats[3], true
	}
	return imageFormat{}, false
}

// header is what readHeader learnt of an image before its pixels.
type header struct {
	format imageFormat
	width  int
	height int
	// read replays the bytes the header took, then the rest of the image.
	read io.Reader
}

// readHeader reads an image's header from r, at most maxHeaderBytes of it,
// and returns its format and size without allocating its bitmap.
func readHeader(r io.Reader) (header, error) {
	// Record what DecodeConfig reads, then replay it in front of the rest.
	var head bytes.Buffer
	limited := &io.LimitedReader{R: r, N: maxHeaderBytes}
	tee := io.TeeReader(limited, &head)
	var magicBytes [12]byte
	n, _ := io.ReadFull(tee, magicBytes[:])
	format, ok := formatOf(magicBytes[:n])
	if !ok {
		return header{}, errors.New("files: not a PNG, JPEG, GIF or WebP image")
	}
	cfg, err := format.decodeConfig(io.MultiReader(bytes.NewReader(magicBytes[:n]), tee))
	if err != nil {
		if limited.N <= 0 {
			return header{}, fmt.Errorf("files: %s header longer than %d bytes", format.name, maxHeaderBytes)
		}
		return header{}, fmt.Errorf("files: %s header: %w", format.name, err)
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 {
		return header{}, fmt.Errorf("files: %s image has no pixels (%d×%d)", format.name, w, h)
	}
	return header{format: format, width: w, height: h, read: io.MultiReader(&head, r)}, nil
}

// ImageSize reads the header of a PNG, JPEG, GIF or WebP image from r and
// returns its width and height. It reads at most a few MiB whatever the
// image claims, and decodes no pixels, so it is cheap enough to run on
// every upload before the image is accepted: a decompression bomb is
// refused on its header alone, and only images worth it are decoded later.
func ImageSize(r io.Reader) (width, height int, err error) {
	h, err := readHeader(r)
	return h.width, h.height, err
}

// Thumbnail decodes a PNG, JPEG, GIF (first frame) or WebP image from r and
// returns it scaled to fit maxSide×maxSide, never enlarged: a JPEG for an
// opaque image, a PNG when it has transparency. The image's header is read
// first and an image of more than maxPixels pixels is refused with an error
// wrapping ErrTooManyPixels before its bitmap is allocated, so a small file
// claiming a huge size (a decompression bomb) costs nothing. Re-encoding
// also drops all metadata (EXIF location and the like) from the preview.
func Thumbnail(r io.Reader, maxPixels int64, maxSide int) (Thumb, error) {
	if maxPixels <= 0 || maxSide <= 0 {
		return Thumb{}, errors.New("files: thumbnail limits must be positive")
	}
	src, err := decodeLimited(r, maxPixels)
	if err != nil {
		return Thumb{}, err
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := fit(w, h, maxSide)
	t, err := encodeScaled(src, b, tw, th)
	t.SourceWidth, t.SourceHeight = w, h
	return t, err
}

// AvatarSide is the width and height of an avatar, in pixels: sharp at
// twice the largest size the web client shows one.
const AvatarSide = 256

// Avatar decodes an image as Thumbnail does, with the same limits, cuts the
// largest centred square out of it (the web client crops in the browser,
// so this only matters to other clients) and scales that to at most
// AvatarSide pixels square, re-encoded without metadata.
func Avatar(r io.Reader, maxPixels int64) (Thumb, error) {
	if maxPixels <= 0 {
		return Thumb{}, errors.New("files: avatar limits must be positive")
	}
	src, err := decodeLimited(r, maxPixels)
	if err != nil {
		return Thumb{}, err
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	side := min(w, h)
	square := image.Rect(0, 0, side, side).Add(b.Min).Add(image.Pt((w-side)/2, (h-side)/2))
	ts := min(side, AvatarSide)
	t, err := encodeScaled(src, square, ts, ts)
	t.SourceWidth, t.SourceHeight = w, h
	return t, err
}

// decodeLimited reads an image's header, refuses one of more than
// maxPixels pixels (an error wrapping ErrTooManyPixels) before its bitmap is
// allocated, so a small file claiming a huge size (a decompression bomb)
// costs nothing, and decodes it.
func decodeLimited(r io.Reader, maxPixels int64) (image.Image, error) {
	hdr, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	format, w, h := hdr.format, hdr.width, hdr.height
	if pixels := int64(w) * int64(h); pixels > maxPixels {
		return nil, &PixelError{Width: w, Height: h, Max: maxPixels}
	}
	src, err := format.decode(hdr.read)
	if err != nil {
		return nil, fmt.Errorf("files: decode %s: %w", format.name, err)
	}
	b, full := src.Bounds(), image.Rect(0, 0, w, h)
	if b != full {
		if b.Empty() || !b.In(full) {
			return nil, fmt.Errorf("files: %s decoded as %v, header said %d×%d", format.name, b, w, h)
		}
		// A GIF's first frame may cover only part of its screen; what it
		// leaves uncovered shows as transparent, as in a browser.
		canvas := image.NewNRGBA(full)
		draw.Draw(canvas, b, src, b.Min, draw.Src)
		src = canvas
	}
	return src, nil
}

// encodeScaled scales the part from of src to tw×th and encodes it: a JPEG
// when src is opaque, a PNG when it has transparency.
func encodeScaled(src image.Image, from image.Rectangle, tw, th int) (Thumb, error) {
	opaque := isOpaque(src)
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	if tw == from.Dx() && th == from.Dy() {
		draw.Draw(dst, dst.Bounds(), src, from.Min, draw.Src)
	} else {
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), src, from, xdraw.Src, nil)
	}

	var out bytes.Buffer
	var err error
	t := Thumb{Width: tw, Height: th}
	if opaque {
		// Filtering an opaque image can round an alpha of 1.0 down a
		// little; JPEG has no alpha, so say so exactly.
		for i := 3; i < len(dst.Pix); i += 4 {
			dst.Pix[i] = 0xff
		}
		err = jpeg.Encode(&out, dst, &jpeg.Options{Quality: thumbQuality})
		t.MimeType = "image/jpeg"
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, dst)
		t.MimeType = "image/png"
	}
	if err != nil {
		return Thumb{}, fmt.Errorf("files: encode thumbnail: %w", err)
	}
	t.Data = out.Bytes()
	return t, nil
}

// fit returns the size of a w×h image scaled to fit side×side with its
// aspect ratio kept, never larger than it is and never below 1×1.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, int((int64(h)*int64(side)+int64(w)/2)/int64(w)))
	}
	return max(1, int((int64(w)*int64(side)+int64(h)/2)/int64(h))), side
}

// isOpaque reports whether every pixel of img is fully opaque. Image types
// that cannot say are treated as transparent: a PNG thumbnail is merely
// larger, a JPEG one would turn transparency black.
func isOpaque(img image.Image) bool {
	o, ok := img.(interface{ Opaque() bool })
	return ok && o.Opaque()
}
