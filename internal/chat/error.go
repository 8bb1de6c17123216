// Package chat holds Mapsim Chat's domain: the types every other package talks
// through, the service interfaces they implement, and the error codes they share.
package chat

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Error codes. They are part of the API: clients switch on them.
const (
	EInvalid      = "invalid"
	EUnauthorized = "unauthorized"
	EForbidden    = "forbidden"
	ENotFound     = "not_found"
	EConflict     = "conflict"
	ETooMany      = "too_many"
	ETooLarge     = "too_large"
	EUnavailable  = "unavailable"
	EInternal     = "internal"
)

// Error is the one error type the domain returns. Message is a sentence a user
// may read; it never contains secrets.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, tells the client how long to wait before
	// trying again.
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing sentence for err. Internal errors get a
// generic sentence so that no detail of the server leaks to clients.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// Clip shortens client input that an error sentence quotes to at most n
// bytes, on a character boundary, marking the cut with "…".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
