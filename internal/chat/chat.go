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
}

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
	Unread        int      // messages after LastReadID from others, at most UnreadCap
	LastMessageID int64    // newest message (not event) id; 0 when empty
	LastMessageAt time.Time
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
}

// Inserted is the store's answer for one NewMessage: the message's id and
// whether this call created it (false when (user, client id) already existed).
type Inserted struct {
	ID        int64
	ChatID    int64
	Created   bool
	CreatedAt time.Time
}

// Store is the persistence the services need. Every method takes ctx first;
// transactions stay inside the implementation.
type Store interface {
	// CreateUser inserts u, sets u.ID and adds the user to the global chat, in
	// one transaction. A username or email already taken (ignoring case) is
	// EConflict. A non-nil invite is consumed in the same transaction; a used
	// or expired invite is EInvalid.
	CreateUser(ctx context.Context, u *User, invite []byte) error
	// UserByUsername finds a user ignoring case; ENotFound when there is none.
	UserByUsername(ctx context.Context, username string) (User, error)
	// SetPassword replaces a user's password hash and revokes every session.
	SetPassword(ctx context.Context, userID int64, hash string, at time.Time) error

	// CreateSession inserts s and sets s.ID.
	CreateSession(ctx context.Context, s *Session) error
	// AccessByTokenHash and AccessBySessionID read what an access check
	// needs of a session and its user; ENotFound when either is missing.
	AccessByTokenHash(ctx context.Context, tokenHash []byte) (Access, error)
	AccessBySessionID(ctx context.Context, id int64) (Access, error)
	// RevokeSession marks a session revoked at the given time.
	RevokeSession(ctx context.Context, id int64, at time.Time) error
	// DeleteExpiredSessions removes sessions that expired before the given time.
	DeleteExpiredSessions(ctx context.Context, before time.Time) (int64, error)

	// CreateInvite stores a new invite.
	CreateInvite(ctx context.Context, inv Invite) error

	// KeyVersions returns every stored key version, oldest first.
	KeyVersions(ctx context.Context) ([]KeyVersion, error)
	// InsertKeyVersion stores a wrapped key and returns its id.
	InsertKeyVersion(ctx context.Context, wrapped []byte, at time.Time) (int64, error)
	// ReplaceWrappedKeys rewrites the wrapped keys of existing versions in one
	// transaction (used when SECRET_KEY changes).
	ReplaceWrappedKeys(ctx context.Context, versions []KeyVersion) error

	// ChatByName finds a chat by name; ENotFound when there is none.
	ChatByName(ctx context.Context, name string) (Chat, error)
	// ChatByID finds a chat by id; ENotFound when there is none.
	ChatByID(ctx context.Context, id int64) (Chat, error)
	// IsMember reports whether the user belongs to the chat.
	IsMember(ctx context.Context, chatID, userID int64) (bool, error)
	// UserChatIDs returns the ids of every chat the user belongs to.
	UserChatIDs(ctx context.Context, userID int64) ([]int64, error)

	// InsertMessages commits a group of messages in one transaction, in
	// order, idempotent on (user, client id): a pair already stored returns the
	// stored id with Created false and stores nothing.
	InsertMessages(ctx context.Context, msgs []NewMessage) ([]Inserted, error)
	// MessagesBefore returns up to limit messages of a chat with id < before
	// (before <= 0 means from the newest), oldest first, and whether older
	// ones exist.
	MessagesBefore(ctx context.Context, chatID, before int64, limit int) ([]Message, bool, error)
	// MessagesAfter returns up to limit messages of a chat with id > after,
	// oldest first.
	MessagesAfter(ctx context.Context, chatID, after int64, limit int) ([]Message, error)

	// MessagesByIDs returns the messages of a chat with the given ids, in id
	// order; ids of other chats or missing rows are left out.
	MessagesByIDs(ctx context.Context, chatID int64, ids []int64) ([]Message, error)
	// EditMessage applies an edit or delete and inserts its event row, in one
	// transaction. A target that is missing, in another chat or an event
	// itself is ENotFound; one written by another user is EForbidden; one
	// already deleted is EConflict; an edit of a non-text message is
	// EInvalid. A retried EventClientID returns the stored event with
	// Created false and changes nothing.
	EditMessage(ctx context.Context, e Edit) (EditResult, error)

	// CreateChat inserts a direct chat or a group with its members. The first
	// member is the creator (owner of a group). A direct chat is named
	// DirectChatName of its two members; when it exists already the
	// existing chat is returned with created false. A group's creation
	// writes a "created" system message (client id clientID) sealed by seal.
	CreateChat(ctx context.Context, c *Chat, memberIDs []int64, seal Sealer, clientID string) (created bool, change ChatChange, err error)
	// AddMembers adds users to a group; users already in it are skipped. An
	// "added" system message is written when anyone was added.
	AddMembers(ctx context.Context, chatID, actorID int64, userIDs []int64, at time.Time, seal Sealer, clientID string) (ChatChange, error)
	// RemoveMember removes a user from a group (actorID == userID: the user
	// leaves), writing a "removed" or "left" system message; when the user
	// was the owner, the longest-standing remaining member becomes owner
	// and an "owner" system message follows. Not a member: ENotFound.
	RemoveMember(ctx context.Context, chatID, actorID, userID int64, at time.Time, seal Sealer, clientID string) (ChatChange, error)
	// RenameChat sets a group's title and writes a "renamed" system message.
	RenameChat(ctx context.Context, chatID, actorID int64, title string, at time.Time, seal Sealer, clientID string) (ChatChange, error)
	// Members returns a chat's members by joined_at, then user id.
	Members(ctx context.Context, chatID int64) ([]Member, error)
	// UserChats returns the chats a user belongs to, most recent activity
	// first (last message, else creation).
	UserChats(ctx context.Context, userID int64) ([]ChatSummary, error)
	// UserChat returns one chat as the user sees it; ENotFound when the
	// user is not a member or it does not exist.
	UserChat(ctx context.Context, userID, chatID int64) (ChatSummary, error)
	// MarkRead moves the user's last_read_id forward to messageID (never
	// back, never past the chat's newest id) and returns the new value.
	MarkRead(ctx context.Context, chatID, userID, messageID int64) (int64, error)
	// SearchUsers returns up to limit active users whose username starts
	// with prefix (ignoring ASCII case), by username.
	SearchUsers(ctx context.Context, prefix string, limit int) ([]User, error)

	// InsertFile stores a file's row.
	InsertFile(ctx context.Context, f File) error
	// FileByID finds a file; ENotFound when there is none.
	FileByID(ctx context.Context, id []byte) (File, error)
	// FilesByIDs returns the files with the given ids, in no particular
	// order; missing ids are left out.
	FilesByIDs(ctx context.Context, ids [][]byte) ([]File, error)
	// FileUsage sums the files not expired.
	FileUsage(ctx context.Context) (FileUsage, error)
	// OldestFiles returns up to limit files not expired, oldest first.
	OldestFiles(ctx context.Context, limit int) ([]File, error)
	// ExpireFile marks a file expired; false when it was already.
	ExpireFile(ctx context.Context, id []byte, at time.Time) (bool, error)
	// ClearData deletes every message, file row and key version, in one
	// transaction, and resets read markers: the full reset an operator may
	// ask for. Users and chats stay.
	ClearData(ctx context.Context) (Cleared, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
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
}

// Event is something to deliver to the connections subscribed to a chat: a
// committed message, or an ephemeral signal such as typing (MessageID 0).
// Frame holds the encoded frame, so that it is encoded once for everyone.
type Event struct {
	ChatID    int64
	MessageID int64
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
