// Package wire holds the JSON shapes that clients see: WebSocket frames and
// the message objects of the REST API. Field names follow DESIGN.md so that
// existing scripts keep working.
package wire

import (
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// Frame types, client to server.
const (
	TypeText   = "text"
	TypeFile   = "file"
	TypeTyping = "typing"
	TypeJoin   = "join"
	TypeLeave  = "leave"
	TypeSync   = "sync"
	TypePing   = "ping"
)

// Frame types, server to client (besides the message kinds).
const (
	TypeAck         = "ack"
	TypeError       = "error"
	TypePong        = "pong"
	TypeOnlineUsers = "online_users"
	TypePresence    = "presence"
	TypeSynced      = "synced"
	TypeJoined      = "joined"
	TypeLeft        = "left"
	TypeHello       = "hello"
)

// Inbound is any frame a client sends. Fields a type does not use are ignored.
type Inbound struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
	Text     string `json:"text"`
	ClientID string `json:"client_id"`
	AfterID  int64  `json:"after_id"`
	// Typing is false in a typing frame that says the user stopped; a
	// typing frame without it means started.
	Typing *bool `json:"typing"`
}

// Message is a message as clients see it, in frames and in history.
type Message struct {
	Type      string  `json:"type"` // the message kind: text, file or system
	ID        int64   `json:"id"`
	ChatID    int64   `json:"chat_id"`
	ChatName  string  `json:"chat_name"`
	Username  string  `json:"username"`
	Text      string  `json:"text"`
	Timestamp string  `json:"timestamp"`
	ClientID  string  `json:"client_id"`
	EditedAt  *string `json:"edited_at,omitempty"`
	Deleted   bool    `json:"deleted,omitempty"`
}

// Timestamp formats a time as clients expect: RFC 3339 in UTC with
// milliseconds.
func Timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// FromMessage converts a domain message (already opened) to its wire shape.
func FromMessage(m chat.Message) Message {
	out := Message{
		Type: m.Kind, ID: m.ID, ChatID: m.ChatID, ChatName: m.ChatName, Username: m.Username,
		Text: m.Text, Timestamp: Timestamp(m.CreatedAt), ClientID: m.ClientID,
	}
	if !m.EditedAt.IsZero() {
		s := Timestamp(m.EditedAt)
		out.EditedAt = &s
	}
	if !m.DeletedAt.IsZero() {
		out.Deleted = true
		out.Text = ""
	}
	return out
}

// Ack tells a sender its message is committed.
type Ack struct {
	Type     string `json:"type"`
	ClientID string `json:"client_id"`
	ID       int64  `json:"id"`
	ChatName string `json:"chat_name"`
	// Duplicate is true when the client id had been stored before.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Error is an error frame. The connection stays open after one, unless the
// server closes it with a close frame.
type Error struct {
	Type       string `json:"type"`
	Code       string `json:"code"`
	Detail     string `json:"detail"`
	ClientID   string `json:"client_id,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// Presence says a user came online or went offline.
type Presence struct {
	Type     string `json:"type"`
	Username string `json:"username"`
	Online   bool   `json:"online"`
}

// OnlineUsers lists who is online, sent on connect.
type OnlineUsers struct {
	Type  string   `json:"type"`
	Users []string `json:"users"`
}

// Typing relays that a user is typing (or stopped) in a chat.
type Typing struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
	Username string `json:"username"`
	Typing   bool   `json:"typing"`
}

// Synced ends a sync: everything up to LastID has been sent.
type Synced struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
	LastID   int64  `json:"last_id"`
}

// ChatEvent answers join and leave.
type ChatEvent struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
}

// Hello is the first frame on a new connection.
type Hello struct {
	Type            string `json:"type"`
	Username        string `json:"username"`
	ChatName        string `json:"chat_name"`
	MaxMessageBytes int    `json:"max_message_bytes"`
}
