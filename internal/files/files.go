// Package files holds the building blocks of encrypted file storage: the
// sealed chunk format that keeps uploads encrypted at rest while still
// letting a download seek, the cleaning of user-supplied names and types
// that keeps a stored file from being served as something active, bounded
// thumbnailing, and a client for the clamd malware scanner. It has no
// database and no HTTP handlers; package uploads puts the pieces together.
package files

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error that means a sealed file does not
// authenticate: a changed, truncated, extended or reordered file, a chunk
// from another file, or the wrong key. Such a file is damaged or tampered
// with, and none of its unverified bytes are ever returned.
var ErrCorrupt = errors.New("sealed file is corrupt")

// ErrTooManyPixels is wrapped by Thumbnail's error for an image whose
// header claims more pixels than allowed, so that a decompression bomb is
// refused before its bitmap is allocated.
var ErrTooManyPixels = errors.New("image has too many pixels")

// PixelError is Thumbnail's error for an image over the pixel limit: it
// says how large the image claims to be, so that a caller can tell a large
// photo from a decompression bomb. It matches ErrTooManyPixels.
type PixelError struct {
	Width, Height int
	Max           int64
}

func (e *PixelError) Error() string {
	return fmt.Sprintf("%v: %d×%d is %d pixels, more than the %d allowed", ErrTooManyPixels, e.Width, e.Height, int64(e.Width)*int64(e.Height), e.Max)
}

// Is makes errors.Is(err, ErrTooManyPixels) hold.
func (e *PixelError) Is(target error) bool { return target == ErrTooManyPixels }

// ErrScannerDown is wrapped by every error that means the malware scanner
// could not give a verdict: it is unreachable, timed out, or failed the
// scan. Callers fail closed on it and refuse the upload.
var ErrScannerDown = errors.New("malware scanner unavailable")

// ErrScanLimit is wrapped by the error returned when clamd refuses a stream
// longer than its StreamMaxLength setting. It is told apart from
// ErrScannerDown because the fix is a smaller file, not a retry later.
var ErrScanLimit = errors.New("file exceeds the malware scanner's size limit")
