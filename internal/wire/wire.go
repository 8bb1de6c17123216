// Package wire holds the JSON shapes that clients see: WebSocket frames and
// the message objects of the REST API. Field names follow DESIGN.md so that
// existing scripts keep working.
package wire

import (
	"encoding/hex"
	"encoding/json"
	"time"
	"unicode/utf8"

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
	TypeEdit   = "edit"
	TypeDelete = "delete"
	TypeRead   = "read"
)

// ClientTypes lists every frame type a client may send. The membership
// matrix test walks it, so a new type cannot ship without its row.
var ClientTypes = []string{TypeText, TypeFile, TypeTyping, TypeJoin, TypeLeave, TypeSync, TypePing, TypeEdit, TypeDelete, TypeRead}

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
	TypeChatAdded   = "chat_added"
	TypeChatUpdated = "chat_updated"
	TypeChatRemoved = "chat_removed"
	TypeUser        = "user" // a user's display name or avatar changed
	// Edits and deletes go out as messages of type TypeEdit and TypeDelete;
	// a read marker as TypeRead.
)

// Inbound is any frame a client sends. Fields a type does not use are ignored.
type Inbound struct {
	Type     string `json:"type"`
	ChatName string `json:"chat_name"`
	Text     string `json:"text"`
	ClientID string `json:"client_id"`
	AfterID  int64  `json:"after_id"`
	// MessageID names the message an edit, delete or read frame is about.
	MessageID int64 `json:"message_id"`
	// ReplyTo is the id of the message a text or file frame answers.
	ReplyTo int64 `json:"reply_to"`
	// Typing is false in a typing frame that says the user stopped; a
	// typing frame without it means started.
	Typing *bool `json:"typing"`
}

// DecodeInbound decodes one client frame: valid UTF-8 holding exactly one
// JSON value that fits Inbound. Every refusal is a chat.EInvalid error with
// a sentence for the client; the hub sends it back as an error frame.
// A frame without a type decodes; what to do with it is the hub's call.
func DecodeInbound(data []byte) (Inbound, error) {
	var in Inbound
	if !utf8.Valid(data) {
		return Inbound{}, chat.Errorf(chat.EInvalid, "The frame is not valid UTF-8.")
	}
	// Unmarshal, unlike a Decoder, refuses anything after the value: a
	// Decoder's More reports false before a stray '}' or ']'.
	if err := json.Unmarshal(data, &in); err != nil {
		return Inbound{}, chat.Errorf(chat.EInvalid, "The frame is not a JSON object with a \"type\".")
	}
	return in, nil
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
	// ReplyTo is the id of the message this one answers, and Reply a
	// preview of it.
	ReplyTo int64  `json:"reply_to,omitempty"`
	Reply   *Reply `json:"reply,omitempty"`
	// MessageID is, in an edit or delete frame, the message that changed.
	MessageID int64 `json:"message_id,omitempty"`
	// System is the event a system message records, for clients that
	// render it in their own language; Text holds an English sentence.
	System *chat.SystemEvent `json:"system,omitempty"`
	// File describes the file a file message links to.
	File *File `json:"file,omitempty"`
}

// File is an uploaded file as clients see it.
type File struct {
	ID       string `json:"id"` // 32 hex digits
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	MimeType string `json:"mime_type"`
	URL      string `json:"url"`
	// ThumbnailURL is set for a raster image whose thumbnail is made or
	// still being made; while it is being made it answers 404 with
	// Retry-After, and clients try again.
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Width        int    `json:"width,omitempty"`
	Height       int    `json:"height,omitempty"`
	// Expired is true once the quota janitor removed the file; the message
	// stays and shows "file expired".
	Expired bool `json:"expired,omitempty"`
}

// FileURL is the path a file is downloaded from.
func FileURL(id []byte) string { return "/file/" + hex.EncodeToString(id) }

// FromFile converts a stored file to its wire shape.
func FromFile(f chat.File) *File {
	out := &File{
		ID: hex.EncodeToString(f.ID), Name: f.Name, Size: f.Size, MimeType: f.MimeType, URL: FileURL(f.ID),
		Width: f.Width, Height: f.Height, Expired: !f.ExpiredAt.IsZero(),
	}
	if (f.ThumbName != "" || f.ThumbPending) && !out.Expired {
		out.ThumbnailURL = out.URL + "/thumbnail"
	}
	return out
}

// Reply previews the message a reply answers.
type Reply struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Text     string `json:"text"` // clipped to ReplyPreviewBytes
	Deleted  bool   `json:"deleted,omitempty"`
}

// ReplyPreviewBytes is the longest reply preview text.
const ReplyPreviewBytes = 200

// Timestamp formats a time as clients expect: RFC 3339 in UTC with
// milliseconds.
func Timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// FromMessage converts a domain message (already opened) to its wire shape.
// An edit or delete event carries its target's current text and state,
// so replaying it is idempotent.
func FromMessage(m chat.Message) Message {
	out := Message{
		Type: m.Kind, ID: m.ID, ChatID: m.ChatID, ChatName: m.ChatName, Username: m.Username,
		Text: m.Text, Timestamp: Timestamp(m.CreatedAt), ClientID: m.ClientID,
		ReplyTo: m.ReplyTo, System: m.System,
	}
	state := m
	if m.TargetID != 0 {
		out.MessageID = m.TargetID
		out.Text = ""
		if m.Target == nil {
			return out
		}
		state = *m.Target
		out.Text = state.Text
	}
	if !state.EditedAt.IsZero() {
		s := Timestamp(state.EditedAt)
		out.EditedAt = &s
	}
	if !state.DeletedAt.IsZero() {
		out.Deleted = true
		out.Text = ""
		out.System = nil
	}
	if m.File != nil && !out.Deleted {
		out.File = FromFile(*m.File)
	}
	if m.Reply != nil {
		r := &Reply{ID: m.Reply.ID, Username: m.Reply.Username, Text: chat.Clip(m.Reply.Text, ReplyPreviewBytes)}
		if !m.Reply.DeletedAt.IsZero() {
			r.Deleted, r.Text = true, ""
		}
		out.Reply = r
	}
	return out
}

// Member is a chat member as clients see it.
type Member struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Online   *bool  `json:"online,omitempty"` // in REST answers, not in frames
}

// Chat is a chat as clients see it. Unread, LastReadID, LastMessageID and
// LastMessageAt are the viewer's and are left out of frames sent to all
// members.
type Chat struct {
	ID            int64    `json:"id"`
	Name          string   `json:"name"`
	Kind          string   `json:"kind"`
	Title         string   `json:"title"`
	E2EE          bool     `json:"e2ee"`
	Members       []Member `json:"members"`
	Role          string   `json:"role,omitempty"`
	Unread        *int     `json:"unread,omitempty"`
	LastReadID    *int64   `json:"last_read_id,omitempty"`
	LastMessageID *int64   `json:"last_message_id,omitempty"`
	LastMessageAt *string  `json:"last_message_at"`
	CreatedAt     string   `json:"created_at"`
	// LastMessage previews the chat's newest message in REST answers
	// (see Preview); absent when the chat has none.
	LastMessage *Message `json:"last_message,omitempty"`
	// Epoch is an encrypted chat's epoch state, in REST answers.
	Epoch *Epoch `json:"epoch,omitempty"`
	// Notify is the viewer's notification level for the chat (all,
	// mentions or muted); left out of frames sent to all members.
	Notify string `json:"notify,omitempty"`
}

// SharedChat converts a chat to the shape every member may see: without
// the viewer's unread count and read marker, and without presence.
func SharedChat(s chat.ChatSummary) Chat {
	out := Chat{
		ID: s.ID, Name: s.Name, Kind: s.Kind, Title: s.Title, E2EE: s.E2EE,
		Members: make([]Member, len(s.Members)), CreatedAt: Timestamp(s.CreatedAt),
	}
	for i, m := range s.Members {
		out.Members[i] = Member{Username: m.Username, Role: m.Role}
	}
	if s.Kind == chat.KindGlobal {
		// Everyone is in global; listing them all in every response would
		// cost O(users). Clients use online_users and presence instead.
		out.Members = []Member{}
	}
	if !s.LastMessageAt.IsZero() {
		t := Timestamp(s.LastMessageAt)
		out.LastMessageAt = &t
	}
	return out
}

// FromChat converts a chat as its viewer sees it, with unread count, read
// marker and, when online is given, each member's presence.
func FromChat(s chat.ChatSummary, online func(userID int64) bool) Chat {
	out := SharedChat(s)
	out.Role, out.Notify = s.Role, s.Notify
	unread, lastRead, lastMsg := s.Unread, s.LastReadID, s.LastMessageID
	out.Unread, out.LastReadID, out.LastMessageID = &unread, &lastRead, &lastMsg
	if online != nil {
		for i := range out.Members {
			on := online(s.Members[i].UserID)
			out.Members[i].Online = &on
		}
	}
	return out
}

// PreviewBytes is the longest text of a chat list's last-message preview.
const PreviewBytes = 300

// Preview is a chat's newest message as its list shows it: the message
// with its text clipped to PreviewBytes and without its reply. An end-to-end
// encrypted chat's preview has no text: the client shows what it has
// decrypted, or says the message is encrypted.
func Preview(m chat.Message) *Message {
	out := FromMessage(m)
	out.Text = chat.Clip(out.Text, PreviewBytes)
	out.Reply, out.ReplyTo = nil, 0
	return &out
}

// ChatFrame announces a chat that was added for the receiver, or changed.
type ChatFrame struct {
	Type string `json:"type"`
	Chat Chat   `json:"chat"`
}

// ChatRemoved tells a user they are no longer in a chat.
type ChatRemoved struct {
	Type     string `json:"type"`
	ChatID   int64  `json:"chat_id"`
	ChatName string `json:"chat_name"`
}

// Read tells a user's connections how far they have read a chat.
type Read struct {
	Type       string `json:"type"`
	ChatID     int64  `json:"chat_id"`
	ChatName   string `json:"chat_name"`
	LastReadID int64  `json:"last_read_id"`
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
	Type     string `json:"type"`
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	ClientID string `json:"client_id,omitempty"`
	// RetryAfter is in seconds, with millisecond precision.
	RetryAfter float64 `json:"retry_after,omitempty"`
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

// Typing relays that a user is typing (or stopped) in a chat. A start
// holds for ExpiresIn seconds unless refreshed; the server sends the stop.
type Typing struct {
	Type      string  `json:"type"`
	ChatID    int64   `json:"chat_id"`
	ChatName  string  `json:"chat_name"`
	Username  string  `json:"username"`
	Typing    bool    `json:"typing"`
	ExpiresIn float64 `json:"expires_in,omitempty"` // seconds
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
	// Resume is true when the connection holds each chat's live messages
	// until the client syncs it (opened with resume=1).
	Resume bool `json:"resume"`
	// Limits are what the server allows this client, so it can pace
	// itself under them instead of hitting them.
	Limits Limits `json:"limits"`
}

// Limits tell a client the server's limits: the largest message, the rates
// of messages (per user) and frames (per connection), and the largest
// upload.
type Limits struct {
	MaxMessageBytes   int     `json:"max_message_bytes"`
	MessagesPerSecond float64 `json:"messages_per_second"`
	MessagesBurst     int     `json:"messages_burst"`
	FramesPerSecond   float64 `json:"frames_per_second"`
	FramesBurst       int     `json:"frames_burst"`
	UploadMaxBytes    int64   `json:"upload_max_bytes"`
}

// FromLimits converts the server's limits to their wire shape.
func FromLimits(l chat.Limits) Limits {
	return Limits{
		MaxMessageBytes: l.MaxMessageBytes, MessagesPerSecond: l.MessageRate, MessagesBurst: l.MessageBurst,
		FramesPerSecond: l.FrameRate, FramesBurst: l.FrameBurst, UploadMaxBytes: l.UploadMaxBytes,
	}
}
