package chat

import (
	"context"
	"strconv"
	"time"
)

// Chat kinds.
const (
	KindGlobal = "global"
	KindDirect = "direct"
	KindGroup  = "group"
)

// GlobalChatName is the name of the chat every user belongs to.
const GlobalChatName = "global"

// Message kinds. Text, file and system rows are messages; edit and delete
// rows are events that record a change to an earlier message of the same
// chat (TargetID), so that a sync after an id replays changes too.
const (
	MessageText   = "text"
	MessageFile   = "file"
	MessageSystem = "system"
	MessageEdit   = "edit"
	MessageDelete = "delete"
)

// Member roles within a chat.
const (
	MemberOwner  = "owner"
	MemberMember = "member"
)

// UnreadCap is the most unread messages counted per chat; a chat with more
// reports UnreadCap.
const UnreadCap = 1000

// User roles.
const (
	RoleMember = "member"
	RoleAdmin  = "admin"
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string // "" when the user gave none
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	DisabledAt   time.Time // zero while the account is active
	DeletedAt    time.Time // zero unless the account was deleted (it is disabled too)
	// DisplayName is shown instead of the username where people appear;
	// "" when the user set none.
	DisplayName string
	// AvatarAt is when the user's avatar was set, and its version; zero
	// when they have none (clients show their initials).
	AvatarAt time.Time
}

// Avatar is a user's picture as served: an image the server re-encoded.
type Avatar struct {
	UserID    int64
	Image     []byte
	MimeType  string
	UpdatedAt time.Time
}

// Notification levels: which messages of a chat notify a member.
const (
	NotifyAll      = "all"
	NotifyMentions = "mentions" // only messages naming them as @username
	NotifyMuted    = "muted"
)

// DeletedUsername is how a deleted account appears wherever its name would
// (its messages, the members of its chats). No username can be spelled so,
// as usernames have no spaces, so no client mistakes it for a real user.
const DeletedUsername = "deleted user"

// Session is one login. The access token's jti names it through TokenHash, so
// revoking the session revokes the token.
type Session struct {
	ID        int64
	UserID    int64
	TokenHash []byte // SHA-256 of the token's jti
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while the session is live
	UserAgent string
	IP        string
	// LastUsedAt is when the session was last refreshed or checked (to the
	// minutes, see auth); its creation until then.
	LastUsedAt time.Time
}

// Chat is a conversation: the global chat, a direct chat or a group.
type Chat struct {
	ID        int64
	Name      string
	Kind      string
	Title     string
	E2EE      bool
	CreatedBy int64
	CreatedAt time.Time
}

// Message is one stored message. Body is the sealed ciphertext as stored;
// Text is the plaintext, filled in by the service after opening Body.
type Message struct {
	ID         int64
	ChatID     int64
	ChatName   string
	UserID     int64
	Username   string
	Kind       string
	KeyVersion int64
	Body       []byte
	Text       string
	ClientID   string
	CreatedAt  time.Time
	EditedAt   time.Time
	DeletedAt  time.Time
	// ReplyTo is the id of the message (same chat) this one answers; 0 for none.
	ReplyTo int64
	// TargetID is, for an edit or delete event, the message it changed.
	TargetID int64

	// Filled in by the delivery service, not the store: the message replied
	// to (opened), the target of an event as it is now (opened), and the
	// decoded event of a system message, and the file of a file message.
	Reply  *Message
	Target *Message
	System *SystemEvent
	// File is the file a file message links to.
	File *File
}

// File is an uploaded file as stored: sealed in chunks under StorageName in
// the upload folder, with an optional sealed thumbnail beside it.
type File struct {
	ID          []byte // 16 random bytes; clients see it as 32 hex digits
	ChatID      int64
	UploaderID  int64
	Name        string // cleaned original name
	MimeType    string // sniffed, not trusted from the client
	Size        int64  // plaintext bytes
	SHA256      []byte
	KeyVersion  int64
	StorageName string
	CreatedAt   time.Time
	ExpiredAt   time.Time // zero while the file is kept

	// The thumbnail of a raster image; ThumbName is "" when there is none.
	ThumbName     string
	ThumbSize     int64
	ThumbMimeType string
	Width, Height int // of the original image; 0 when unknown
	// ThumbPending is true while the thumbnail of a raster image is still
	// to be made: the upload answers before it is.
	ThumbPending bool
}

// FileUsage is how much the stored files take.
type FileUsage struct {
	Files int64
	Bytes int64 // plaintext bytes of files not expired
}

// Cleared counts what ClearData removed.
type Cleared struct {
	Messages, Files, KeyVersions int64
}

// Member is a user's place in a chat.
type Member struct {
	UserID     int64
	Username   string
	Role       string // MemberOwner or MemberMember
	JoinedAt   time.Time
	LastReadID int64
}

// ChatSummary is a chat as one member sees it in their list.
type ChatSummary struct {
	Chat
	Members       []Member // ordered by joined_at, then user id
	Role          string   // the viewer's role
	LastReadID    int64    // the viewer's
	Notify        string   // the viewer's notification level (NotifyAll…)
	Unread        int      // messages after LastReadID from others, at most UnreadCap
	LastMessageID int64    // newest message (not event) id; 0 when empty
	LastMessageAt time.Time
	// Epoch is an encrypted chat's epoch state (zero for other chats).
	Epoch EpochState
}

// SystemEvent is what a system message records; its JSON is the message's
// (sealed) body.
type SystemEvent struct {
	Event string   `json:"event"` // created, added, removed, left, renamed, owner
	Actor string   `json:"actor"`
	Users []string `json:"users,omitempty"`
	Title string   `json:"title,omitempty"`
}

// System event names.
const (
	EventCreated = "created"
	EventAdded   = "added"
	EventRemoved = "removed"
	EventLeft    = "left"
	EventRenamed = "renamed"
	EventOwner   = "owner" // Users[0] is the new owner
)

// Sealer fills in m.KeyVersion and m.Body by sealing plaintext for the row
// that m describes (its chat, sender, kind and client id). The store calls it
// for the system messages it writes inside a transaction.
type Sealer func(m *NewMessage, plaintext []byte)

// ChatChange is the store's answer to a membership or title change: the
// system messages it wrote, in id order, and what changed.
type ChatChange struct {
	Messages   []Inserted
	System     []SystemEvent // one per message, same order
	Added      []Member      // members added
	Removed    int64         // user removed or who left; 0 for none
	NewOwnerID int64         // set when ownership passed to another member
}

// Edit is a change to a message: a new text, or a delete.
type Edit struct {
	ChatID   int64
	UserID   int64 // the editor, who must be the author
	TargetID int64
	Delete   bool
	// KeyVersion and Body are the target's new sealed body (edits only),
	// sealed for the target row.
	KeyVersion int64
	Body       []byte
	// EventKeyVersion and EventClientID describe the event row; the client
	// id makes a retried edit idempotent.
	EventKeyVersion int64
	EventClientID   string
	At              time.Time
}

// EditResult is the store's answer to an Edit.
type EditResult struct {
	Event  Inserted // the event row; Created false for a retried client id
	Target Message  // the target as it is now (Body sealed, Text empty)
}

// KeyVersion is one session key as stored: wrapped under the key derived
// from SECRET_KEY.
type KeyVersion struct {
	ID         int64
	WrappedKey []byte
	CreatedAt  time.Time
}

// Invite is a single-use registration code, stored by its hash.
type Invite struct {
	CodeHash  []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	UsedBy    int64
}

// NewMessage is a message on its way into the store: sealed, not yet committed.
type NewMessage struct {
	ChatID     int64
	UserID     int64
	Kind       string
	KeyVersion int64
	Body       []byte
	ClientID   string
	CreatedAt  time.Time
	ReplyTo    int64
	// Use, for a message of an end-to-end encrypted chat, is the epoch and
	// device its mse1 text names: the store checks and counts it in the
	// transaction that stores the message (EStaleEpoch when refused).
	Use *MessageUse
}

// Inserted is the store's answer for one NewMessage: the message's id and
// whether this call created it (false when (user, client id) already existed).
type Inserted struct {
	ID        int64
	ChatID    int64
	Created   bool
	CreatedAt time.Time
	// Prev is the id of the chat's row just before this one (0 for the
	// chat's first), as the commit saw it. Rows of one chat commit one
	// after another, so a node that receives this row knows what it must
	// have delivered first (see the Redis broker). 0 when not Created.
	Prev int64
}

// DirectChatName is the name of the direct chat between two users, the same
// whichever order they are given in.
func DirectChatName(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return "direct:" + strconv.FormatInt(a, 10) + ":" + strconv.FormatInt(b, 10)
}

// Identity is who is asking: the user behind a verified access token or
// WebSocket ticket, and the session that vouches for them.
type Identity struct {
	UserID    int64
	Username  string
	Role      string
	SessionID int64
	ExpiresAt time.Time
}

// Revocation is a session revoked (logged out, its password reset) or,
// with SessionID 0, a user disabled: their WebSockets must close.
type Revocation struct {
	SessionID int64 // 0: every session of the user
	UserID    int64
}

// Access is what checking a token or a ticket needs of its session and the
// session's user, read in one lookup.
type Access struct {
	SessionID  int64
	UserID     int64
	Username   string
	Role       string
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while live
	DisabledAt time.Time // zero while the account is enabled
	LastUsedAt time.Time // the session's creation until first used
}

// Event is something to deliver to the connections subscribed to a chat: a
// committed message, or an ephemeral signal such as typing (MessageID 0).
// Frame holds the encoded frame, so that it is encoded once for everyone.
type Event struct {
	ChatID    int64
	MessageID int64
	// Prev, for a committed message, is the id of the chat's message just
	// before it (chat.Inserted.Prev); 0 for the chat's first. For a
	// MembershipJoin it is the id the new members' clients sync after (just
	// before the change's first message).
	Prev int64
	// SkipUserID, when set, is a user who must not receive the event (a
	// typing user does not see their own indicator).
	SkipUserID int64
	Frame      []byte
	// UserIDs, when set, addresses the event to these users' connections
	// instead of the chat's subscribers.
	UserIDs []int64
	// Membership, with UserIDs, changes those connections' subscription to
	// ChatID before Frame is delivered: MembershipJoin or MembershipLeave.
	Membership string
	// Forget says the event follows a change to the chat or its members:
	// a node that caches chats or users' chat lists forgets ChatID and
	// UserIDs' lists before delivering it (the node that made the change
	// has already).
	Forget bool
}

// Membership changes carried by an Event.
const (
	MembershipJoin  = "join"
	MembershipLeave = "leave"
)

// Broker carries events to every node's hub.
type Broker interface {
	// Publish delivers an event to every subscriber, on every node. Events of
	// one chat published from one goroutine arrive in order.
	Publish(ctx context.Context, ev Event) error
	// Subscribe registers the local receiver of events. It is called once.
	Subscribe(deliver func(Event))
}

// Unlock clears the login throttle of a username, of an address, or of the
// two together ("" for the one not named). An admin command stores it, and
// every running server applies it.
type Unlock struct {
	ID        int64
	Username  string
	Address   string
	CreatedAt time.Time
}

// AdminAction is one line of the admin audit trail: who ran which admin
// command, on what, when. Detail never holds a secret.
type AdminAction struct {
	ID        int64
	CreatedAt time.Time
	Actor     string // the operating-system user who ran the command
	Command   string
	Target    string
	Detail    string
}

// UserSummary is a user as the admin's list shows it.
type UserSummary struct {
	User
	LastLogin    time.Time // the newest session's start; zero if none is kept
	LiveSessions int
}
