// Package chats is the chats service: which chats a user may see, direct
// chats and groups, their members and roles, titles, read markers, and the
// user search that finds people to add. Changes to a chat's membership or
// title write system messages into the chat's id sequence, so they go
// through the sequencer, in order with the messages around them.
package chats

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Store is what the chats service needs of the database.
type Store interface {
	// ChatByName and ChatByID find a chat; ENotFound when there is none.
	ChatByName(ctx context.Context, name string) (chat.Chat, error)
	ChatByID(ctx context.Context, id int64) (chat.Chat, error)
	// IsMember reports whether the user belongs to the chat.
	IsMember(ctx context.Context, chatID, userID int64) (bool, error)
	// UserChatIDs returns the ids of every chat the user belongs to.
	UserChatIDs(ctx context.Context, userID int64) ([]int64, error)
	// UsersChatIDs is UserChatIDs for many users at once: every user asked
	// for is in the answer (one in no chat with an empty list), and the
	// lists must not be modified.
	UsersChatIDs(ctx context.Context, userIDs []int64) (map[int64][]int64, error)
	// UserByUsername finds a user ignoring case; ENotFound when there is none.
	UserByUsername(ctx context.Context, username string) (chat.User, error)
	// CreateChat inserts a direct chat or a group with its members (the
	// first is the creator); an existing direct chat is returned with
	// created false. A group's creation writes a "created" system message.
	CreateChat(ctx context.Context, c *chat.Chat, memberIDs []int64, seal chat.Sealer, clientID string) (created bool, change chat.ChatChange, err error)
	// AddMembers adds users to a group, skipping those already in it, and
	// writes an "added" system message when anyone was added.
	AddMembers(ctx context.Context, chatID, actorID int64, userIDs []int64, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error)
	// RemoveMember removes a user from a group (actorID == userID: the
	// user leaves), handing ownership on when the owner goes; ENotFound
	// when the user is not a member.
	RemoveMember(ctx context.Context, chatID, actorID, userID int64, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error)
	// RenameChat sets a group's title and writes a "renamed" system message.
	RenameChat(ctx context.Context, chatID, actorID int64, title string, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error)
	// Members returns a chat's members by joined_at, then user id.
	Members(ctx context.Context, chatID int64) ([]chat.Member, error)
	// UserChats returns the chats a user belongs to, most recent first.
	UserChats(ctx context.Context, userID int64) ([]chat.ChatSummary, error)
	// UserChat returns one chat as the user sees it; ENotFound when the
	// user is not a member or it does not exist.
	UserChat(ctx context.Context, userID, chatID int64) (chat.ChatSummary, error)
	// MarkRead moves the user's read marker forward (never back, never past
	// the newest id) and returns the new value.
	MarkRead(ctx context.Context, chatID, userID, messageID int64) (int64, error)
	// SearchUsers returns up to limit active users whose username starts
	// with prefix, by username.
	SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error)
}

// Options configure a Service.
type Options struct {
	Store Store
	// Profiles is the store's side of profiles and notification levels;
	// the same database as Store.
	Profiles  ProfileStore
	Ring      *keyring.Ring
	Sequencer *sequencer.Sequencer
	Broker    chat.Broker
	Log       *slog.Logger
	Now       func() time.Time
	// CommitTimeout bounds one membership or title change's commit.
	CommitTimeout time.Duration
}

// Service manages chats and their members.
type Service struct {
	store   Store
	ring    *keyring.Ring
	seq     *sequencer.Sequencer
	broker  chat.Broker
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration // Options.CommitTimeout

	profiles  ProfileStore
	avatarSem chan struct{} // bounds the avatars decoded at once
}

// New returns a Service; the sequencer's Run commits its changes. It
// panics without a CommitTimeout (a wiring mistake).
func New(o Options) *Service {
	if o.CommitTimeout <= 0 {
		panic("chats: CommitTimeout must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Profiles == nil {
		o.Profiles, _ = o.Store.(ProfileStore)
	}
	return &Service{store: o.Store, ring: o.Ring, seq: o.Sequencer, broker: o.Broker, log: o.Log, now: o.Now, timeout: o.CommitTimeout,
		profiles: o.Profiles, avatarSem: make(chan struct{}, avatarDecodes)}
}

// errNoChat is the answer for a chat that is missing and for one the user
// is not in, alike, so a non-member learns nothing about it.
var errNoChat = chat.Errorf(chat.EForbidden, "No such chat, or you are not a member of it.")

// Resolve finds a chat by numeric id or by name and checks that the user is
// a member. A missing chat and a chat the user is not in get the same
// answer. An empty ref is the global chat.
func (s *Service) Resolve(ctx context.Context, id chat.Identity, ref string) (chat.Chat, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		ref = chat.GlobalChatName
	}
	if len(ref) > 64 {
		return chat.Chat{}, errNoChat
	}
	var (
		c   chat.Chat
		err error
	)
	if n, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
		c, err = s.store.ChatByID(ctx, n)
	} else {
		c, err = s.store.ChatByName(ctx, ref)
	}
	if chat.ErrorCode(err) == chat.ENotFound {
		return chat.Chat{}, errNoChat
	}
	if err != nil {
		return chat.Chat{}, err
	}
	member, err := s.store.IsMember(ctx, c.ID, id.UserID)
	if err != nil {
		return chat.Chat{}, err
	}
	if !member {
		return chat.Chat{}, errNoChat
	}
	return c, nil
}

// ChatIDs returns the ids of every chat the user belongs to.
func (s *Service) ChatIDs(ctx context.Context, userID int64) ([]int64, error) {
	return s.store.UserChatIDs(ctx, userID)
}

// UsersChatIDs returns the ids of every chat each user belongs to, for
// many users in as few reads as it can; the lists must not be modified.
func (s *Service) UsersChatIDs(ctx context.Context, userIDs []int64) (map[int64][]int64, error) {
	return s.store.UsersChatIDs(ctx, userIDs)
}

// List returns the user's chats with unread counts, most recent first.
func (s *Service) List(ctx context.Context, id chat.Identity) ([]chat.ChatSummary, error) {
	return s.store.UserChats(ctx, id.UserID)
}

// Summary returns one chat as the user sees it.
func (s *Service) Summary(ctx context.Context, id chat.Identity, c chat.Chat) (chat.ChatSummary, error) {
	sum, err := s.store.UserChat(ctx, id.UserID, c.ID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return chat.ChatSummary{}, errNoChat
	}
	return sum, err
}

// CreateRequest asks for a new direct chat or group.
type CreateRequest struct {
	Kind    string   // chat.KindDirect or chat.KindGroup
	Title   string   // groups only
	Members []string // usernames besides the creator; exactly one for direct
	// E2EE makes the chat end-to-end encrypted, for good. A direct chat
	// that exists already stays as it was made.
	E2EE bool
}

// Create starts a direct chat (or returns the existing one with created
// false) or creates a group owned by the asking user. The new members'
// connections are subscribed and told.
func (s *Service) Create(ctx context.Context, id chat.Identity, req CreateRequest) (sum chat.ChatSummary, created bool, err error) {
	c := chat.Chat{Kind: req.Kind, CreatedBy: id.UserID, CreatedAt: s.now().UTC(), E2EE: req.E2EE}
	switch req.Kind {
	case chat.KindDirect:
		if len(req.Members) != 1 {
			return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "A direct chat has exactly one other member.")
		}
	case chat.KindGroup:
		if c.Title, err = chat.CheckTitle(req.Title); err != nil {
			return chat.ChatSummary{}, false, err
		}
		if len(req.Members) > chat.MaxAddAtOnce {
			return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "Add at most %d members at once.", chat.MaxAddAtOnce)
		}
	default:
		return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "kind must be \"direct\" or \"group\".")
	}
	others, err := s.users(ctx, id, req.Members)
	if err != nil {
		return chat.ChatSummary{}, false, err
	}
	if req.Kind == chat.KindDirect && len(others) != 1 {
		return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "A direct chat is with someone else.")
	}
	w := &createChat{change: s.change(id), chat: c, memberIDs: []int64{id.UserID}}
	for _, u := range others {
		w.memberIDs = append(w.memberIDs, u.ID)
	}
	if created, err = submit(ctx, s, w); err != nil {
		return chat.ChatSummary{}, false, err
	}
	sum, err = s.store.UserChat(ctx, id.UserID, w.chat.ID)
	return sum, created, err
}

// AddMembers adds users to a group; only its owner may.
func (s *Service) AddMembers(ctx context.Context, id chat.Identity, c chat.Chat, names []string) (chat.ChatSummary, error) {
	role, err := s.role(ctx, id, c)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if role != chat.MemberOwner {
		return chat.ChatSummary{}, chat.Errorf(chat.EForbidden, "Only the group's owner can add members.")
	}
	if len(names) == 0 {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "Name at least one user to add.")
	}
	if len(names) > chat.MaxAddAtOnce {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "Add at most %d members at once.", chat.MaxAddAtOnce)
	}
	users, err := s.users(ctx, id, names)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	members, err := s.store.Members(ctx, c.ID)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if len(members)+len(users) > chat.MaxGroupMembers {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "A group holds at most %d members.", chat.MaxGroupMembers)
	}
	w := &addMembers{change: s.change(id), chat: c}
	for _, u := range users {
		w.userIDs = append(w.userIDs, u.ID)
	}
	if _, err := submit(ctx, s, w); err != nil {
		return chat.ChatSummary{}, err
	}
	return s.store.UserChat(ctx, id.UserID, c.ID)
}

// RemoveMember takes a user out of a group: the owner may remove anyone,
// and anyone may remove themselves (leave). When the owner leaves, the
// longest-standing member becomes owner.
func (s *Service) RemoveMember(ctx context.Context, id chat.Identity, c chat.Chat, username string) error {
	role, err := s.role(ctx, id, c)
	if err != nil {
		return err
	}
	u, err := s.store.UserByUsername(ctx, strings.TrimSpace(username))
	if chat.ErrorCode(err) == chat.ENotFound {
		return chat.Errorf(chat.ENotFound, "%q is not a member of this group.", chat.Clip(username, 40))
	}
	if err != nil {
		return err
	}
	if u.ID != id.UserID && role != chat.MemberOwner {
		return chat.Errorf(chat.EForbidden, "Only the group's owner can remove other members.")
	}
	_, err = submit(ctx, s, &removeMember{change: s.change(id), chat: c, user: u})
	return err
}

// Rename sets a group's title; only its owner may.
func (s *Service) Rename(ctx context.Context, id chat.Identity, c chat.Chat, title string) (chat.ChatSummary, error) {
	role, err := s.role(ctx, id, c)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if role != chat.MemberOwner {
		return chat.ChatSummary{}, chat.Errorf(chat.EForbidden, "Only the group's owner can rename it.")
	}
	if title, err = chat.CheckTitle(title); err != nil {
		return chat.ChatSummary{}, err
	}
	if _, err := submit(ctx, s, &renameChat{change: s.change(id), chat: c, title: title}); err != nil {
		return chat.ChatSummary{}, err
	}
	return s.store.UserChat(ctx, id.UserID, c.ID)
}

// MarkRead records that the user has read a chat up to a message and tells
// the user's other connections, so every tab's unread count agrees.
func (s *Service) MarkRead(ctx context.Context, id chat.Identity, c chat.Chat, messageID int64) (int64, error) {
	if messageID <= 0 {
		return 0, chat.Errorf(chat.EInvalid, "message_id must name a message.")
	}
	last, err := s.store.MarkRead(ctx, c.ID, id.UserID, messageID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return 0, errNoChat
	}
	if err != nil {
		return 0, err
	}
	frame, _ := json.Marshal(wire.Read{Type: wire.TypeRead, ChatID: c.ID, ChatName: c.Name, LastReadID: last})
	s.publish(ctx, chat.Event{ChatID: c.ID, UserIDs: []int64{id.UserID}, Frame: frame})
	return last, nil
}

// MaxSearchPrefix is the longest prefix SearchUsers takes, in bytes.
const MaxSearchPrefix = 32

// SearchUsers finds active users by the start of their username.
func (s *Service) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	prefix = strings.TrimSpace(prefix)
	if !utf8.ValidString(prefix) || len(prefix) > MaxSearchPrefix {
		return nil, chat.Errorf(chat.EInvalid, "q must be the start of a username (at most %d characters).", MaxSearchPrefix)
	}
	return s.store.SearchUsers(ctx, prefix, limit)
}

// users resolves usernames to active users, in order, without repeats and
// without the asking user.
func (s *Service) users(ctx context.Context, id chat.Identity, names []string) ([]chat.User, error) {
	var out []chat.User
	seen := map[int64]bool{id.UserID: true}
	for _, name := range names {
		u, err := s.store.UserByUsername(ctx, strings.TrimSpace(name))
		if chat.ErrorCode(err) == chat.ENotFound || (err == nil && !u.DisabledAt.IsZero()) {
			return nil, chat.Errorf(chat.ENotFound, "No user named %q.", chat.Clip(name, 40))
		}
		if err != nil {
			return nil, err
		}
		if !seen[u.ID] {
			seen[u.ID] = true
			out = append(out, u)
		}
	}
	return out, nil
}

// role checks that c is a group the user belongs to and returns the user's
// role in it.
func (s *Service) role(ctx context.Context, id chat.Identity, c chat.Chat) (string, error) {
	if c.Kind != chat.KindGroup {
		return "", chat.Errorf(chat.EInvalid, "Only groups have members to add or remove, a title, or a way out.")
	}
	sum, err := s.store.UserChat(ctx, id.UserID, c.ID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return "", errNoChat
	}
	return sum.Role, err
}

// publish hands an event to the broker. A committed change that fails to
// publish is not lost: clients catch up through sync.
func (s *Service) publish(ctx context.Context, ev chat.Event) {
	if err := s.broker.Publish(ctx, ev); err != nil {
		s.log.Warn("publish event", "chat_id", ev.ChatID, "message_id", ev.MessageID, "err", err)
	}
}
