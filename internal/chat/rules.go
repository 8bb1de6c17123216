package chat

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rules below are the one place each is stated: the services, the store
// and the HTTP layer call them rather than checking on their own, so a limit
// has one value whoever enforces it.

// MaxClientIDLen is the longest client id accepted.
const MaxClientIDLen = 64

// Group limits.
const (
	// MaxTitleBytes is the longest group title, in bytes of UTF-8. (MySQL's
	// VARCHAR(255) column holds 255 characters, so any title that passes
	// fits it.)
	MaxTitleBytes = 100
	// MaxGroupMembers is the most members a group may have.
	MaxGroupMembers = 10000
	// MaxAddAtOnce is the most members one request may add.
	MaxAddAtOnce = 256
)

// Limits are what the server allows a client: the largest message, and the
// rates at which a user may send messages and a connection frames. Clients
// learn them from the hello frame and pace themselves under them.
type Limits struct {
	// MaxMessageBytes is the largest message text, in bytes.
	MaxMessageBytes int
	// MessageRate and MessageBurst: messages, edits and deletes a user may
	// send per second, and in a burst (across all their connections).
	MessageRate  float64
	MessageBurst int
	// FrameRate and FrameBurst: frames of any type a connection may send
	// per second, and in a burst.
	FrameRate  float64
	FrameBurst int
	// UploadMaxBytes is the largest file an upload may carry.
	UploadMaxBytes int64
}

// CheckText validates a message's text: valid UTF-8, not blank, at most
// maxBytes, and free of control characters other than newline and tab.
func CheckText(text string, maxBytes int) error {
	if len(text) > maxBytes {
		return Errorf(ETooLarge, "The message is %d bytes; the limit is %d.", len(text), maxBytes)
	}
	if !utf8.ValidString(text) {
		return Errorf(EInvalid, "The message is not valid UTF-8.")
	}
	if strings.TrimSpace(text) == "" {
		return Errorf(EInvalid, "The message is empty.")
	}
	for _, r := range text {
		if r == utf8.RuneError || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return Errorf(EInvalid, "The message contains a control character (U+%04X).", r)
		}
	}
	return nil
}

// CheckClientID validates a client id: up to MaxClientIDLen characters of
// letters, digits and "-_.:". The empty id is valid: the server makes one.
func CheckClientID(id string) error {
	if len(id) > MaxClientIDLen {
		return Errorf(EInvalid, "client_id is longer than %d characters.", MaxClientIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return Errorf(EInvalid, "client_id may hold only letters, digits and - _ . :")
		}
	}
	return nil
}

// NewClientID makes a client id for a message or change whose client gave
// none; "srv-" keeps it apart from the ids clients choose.
func NewClientID() string {
	b := make([]byte, 15)
	rand.Read(b)
	return "srv-" + base64.RawURLEncoding.EncodeToString(b)
}

// CheckTitle validates a group title: valid UTF-8, not blank, at most
// MaxTitleBytes, no control characters. It returns the title trimmed.
func CheckTitle(title string) (string, error) {
	if !utf8.ValidString(title) {
		return "", Errorf(EInvalid, "The title is not valid UTF-8.")
	}
	title = strings.TrimSpace(title)
	if title == "" {
		return "", Errorf(EInvalid, "A group needs a title.")
	}
	if len(title) > MaxTitleBytes {
		return "", Errorf(EInvalid, "The title is %d bytes; the limit is %d.", len(title), MaxTitleBytes)
	}
	for _, r := range title {
		if unicode.IsControl(r) {
			return "", Errorf(EInvalid, "The title contains a control character (U+%04X).", r)
		}
		if IsBidiControl(r) {
			return "", Errorf(EInvalid, "The title contains a character that reverses the text around it (U+%04X).", r)
		}
	}
	return title, nil
}

// MaxDisplayNameChars is the longest display name, in characters (MySQL's
// VARCHAR(64) column counts characters).
const MaxDisplayNameChars = 64

// CheckDisplayName validates a display name: valid UTF-8, at most
// MaxDisplayNameChars characters, no control or direction-override
// characters. It returns the name trimmed; "" (no display name) is valid.
func CheckDisplayName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", Errorf(EInvalid, "The display name is not valid UTF-8.")
	}
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n > MaxDisplayNameChars {
		return "", Errorf(EInvalid, "The display name is %d characters; the limit is %d.", n, MaxDisplayNameChars)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", Errorf(EInvalid, "The display name contains a control character (U+%04X).", r)
		}
		if IsBidiControl(r) {
			return "", Errorf(EInvalid, "The display name contains a character that reverses the text around it (U+%04X).", r)
		}
		if r == '\u2028' || r == '\u2029' {
			return "", Errorf(EInvalid, "The display name contains a line break.")
		}
	}
	return name, nil
}

// CheckNotify validates a notification level.
func CheckNotify(level string) error {
	switch level {
	case NotifyAll, NotifyMentions, NotifyMuted:
		return nil
	}
	return Errorf(EInvalid, "notify must be %q, %q or %q.", NotifyAll, NotifyMentions, NotifyMuted)
}

// IsBidiControl reports whether r is one of the Unicode characters that
// override or isolate the direction of the text after it (U+202A–U+202E,
// U+2066–U+2069). In a name or title they make text display reversed
// ("gpj.exe" shown as "exe.jpg"), so names and titles refuse them;
// messages may carry them, and clients isolate each message.
func IsBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

// Text renders a system event as an English sentence; clients that show
// another language render the event themselves.
func (ev SystemEvent) Text() string {
	switch ev.Event {
	case EventCreated:
		if len(ev.Users) == 0 {
			return ev.Actor + " created the group “" + ev.Title + "”."
		}
		return ev.Actor + " created the group “" + ev.Title + "” with " + nameList(ev.Users) + "."
	case EventAdded:
		return ev.Actor + " added " + nameList(ev.Users) + "."
	case EventRemoved:
		return ev.Actor + " removed " + nameList(ev.Users) + "."
	case EventLeft:
		return ev.Actor + " left."
	case EventRenamed:
		return ev.Actor + " renamed the group to “" + ev.Title + "”."
	case EventOwner:
		return nameList(ev.Users) + " is now the owner."
	}
	return ev.Actor + ": " + ev.Event
}

// nameList joins names as English does: "a", "a and b", "a, b and c".
func nameList(names []string) string {
	switch len(names) {
	case 0:
		return "nobody"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
