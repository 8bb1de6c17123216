package chat

import (
	"context"
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

// Message kinds.
const (
	MessageText   = "text"
	MessageFile   = "file"
	MessageSystem = "system"
)

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
	// UserByID finds a user by id; ENotFound when there is none.
	UserByID(ctx context.Context, id int64) (User, error)
	// SetPassword replaces a user's password hash and revokes every session.
	SetPassword(ctx context.Context, userID int64, hash string, at time.Time) error

	// CreateSession inserts s and sets s.ID.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByTokenHash finds a session; ENotFound when there is none.
	SessionByTokenHash(ctx context.Context, tokenHash []byte) (Session, error)
	// SessionByID finds a session; ENotFound when there is none.
	SessionByID(ctx context.Context, id int64) (Session, error)
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

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
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
}

// Broker carries events to every node's hub.
type Broker interface {
	// Publish delivers an event to every subscriber, on every node. Events of
	// one chat published from one goroutine arrive in order.
	Publish(ctx context.Context, ev Event) error
	// Subscribe registers the local receiver of events. It is called once.
	Subscribe(deliver func(Event))
}
