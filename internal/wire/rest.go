package wire

import (
	"net/url"
	"strconv"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// The REST API's answers, besides the message and chat shapes above. Field
// names follow DESIGN.md so that existing scripts keep working; the golden
// files in testdata/ show each shape, so a change is a visible diff.

// ErrorBody is every error answer: a sentence and a machine code.
type ErrorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// Detail is an answer that is only a sentence ("Logged out.").
type Detail struct {
	Detail string `json:"detail"`
}

// Status answers the health checks.
type Status struct {
	Status string `json:"status"` // ok, ready or unavailable
	Detail string `json:"detail,omitempty"`
	// Broker is the state of the broker among several nodes, "up" or
	// "down" (Redis unreachable); absent on a single node.
	Broker string `json:"broker,omitempty"`
}

// Registered answers a registration.
type Registered struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email,omitempty"`
}

// Token answers a login.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // always "bearer"
	ExpiresIn   int    `json:"expires_in"` // seconds
	Username    string `json:"username"`
}

// Ticket is a single-use WebSocket ticket.
type Ticket struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"` // seconds
}

// History is a keyset page of a chat, oldest first.
type History struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

// ChatList is the asker's chats, most recent activity first.
type ChatList struct {
	Chats []Chat `json:"chats"`
}

// OnlineList is who is online among the people the asker shares a chat
// with.
type OnlineList struct {
	Users []string `json:"users"`
}

// FoundUser is one result of a user search: a profile, and presence.
type FoundUser struct {
	Profile
	Online bool `json:"online"`
}

// Profile is what anyone signed in may see of a user: the username, the
// display name ("" for none) and the avatar's path, versioned by the time
// it was set ("" for none: clients show initials).
type Profile struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Avatar      string `json:"avatar"`
}

// ProfileOf is u's public profile.
func ProfileOf(u chat.User) Profile {
	p := Profile{Username: u.Username, DisplayName: u.DisplayName}
	if !u.AvatarAt.IsZero() {
		p.Avatar = "/users/" + url.PathEscape(u.Username) + "/avatar?v=" + strconv.FormatInt(u.AvatarAt.UnixMilli(), 10)
	}
	return p
}

// ProfileList answers GET /users/profiles.
type ProfileList struct {
	Users []Profile `json:"users"`
}

// UserUpdate tells everyone online that a user's display name or avatar
// changed.
type UserUpdate struct {
	Type string  `json:"type"` // TypeUser
	User Profile `json:"user"`
}

// UserList is the result of a user search.
type UserList struct {
	Users []FoundUser `json:"users"`
}

// ReadMarker answers a read marker's move: where it is now.
type ReadMarker struct {
	LastReadID int64 `json:"last_read_id"`
}

// Uploaded answers an upload.
type Uploaded struct {
	FileID       string `json:"file_id"`
	FileURL      string `json:"file_url"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Name         string `json:"name"`
	Size         int64  `json:"size"`
	MimeType     string `json:"mime_type"`
	ChatID       int64  `json:"chat_id"`
	ChatName     string `json:"chat_name"`
	Width        int    `json:"width,omitempty"`
	Height       int    `json:"height,omitempty"`
}

// MediaURL answers POST /file/{id}/media-url: a URL, without the bearer
// token, that a media element plays from for ExpiresIn seconds.
type MediaURL struct {
	URL       string `json:"url"`
	ExpiresIn int    `json:"expires_in"`
}

// Session is one of my sessions, for the list in Settings: a browser
// signed in, or a token a script or terminal logged in for.
type Session struct {
	ID int64 `json:"id"`
	// Browser and OS are read from the User-Agent the session logged in
	// with ("" when it names neither); UserAgent is that header, clipped.
	Browser    string    `json:"browser"`
	OS         string    `json:"os"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	// Current marks the session the request was made in.
	Current bool `json:"current"`
}

// SessionList answers GET /sessions/.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// Ended answers a request that ended sessions: how many.
type Ended struct {
	Detail string `json:"detail"`
	Ended  int    `json:"ended"`
}
