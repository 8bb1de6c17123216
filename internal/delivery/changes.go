package delivery

import (
	"context"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// ChangeRequest is an edit or delete of one of the user's own messages.
type ChangeRequest struct {
	Chat      chat.Chat // resolved, membership checked
	MessageID int64
	Delete    bool
	Text      string // the new text of an edit
	ClientID  string // optional; makes a retried change idempotent
}

// Change edits or deletes a message and publishes the change. It returns
// the event (kind edit or delete, Target the message as it is now) and
// whether this call made it (false for a retried client id).
func (s *Service) Change(ctx context.Context, id chat.Identity, req ChangeRequest) (chat.Message, bool, error) {
	if !req.Delete {
		if err := s.CheckText(req.Text); err != nil {
			return chat.Message{}, false, err
		}
	}
	if err := CheckClientID(req.ClientID); err != nil {
		return chat.Message{}, false, err
	}
	if req.ClientID == "" {
		req.ClientID = newClientID()
	}
	if req.MessageID <= 0 {
		return chat.Message{}, false, chat.Errorf(chat.EInvalid, "message_id must name a message.")
	}
	// Check early, to seal the new text for the target's row; the store
	// checks again inside its transaction.
	found, err := s.store.MessagesByIDs(ctx, req.Chat.ID, []int64{req.MessageID})
	if err != nil {
		return chat.Message{}, false, err
	}
	if len(found) == 0 || found[0].TargetID != 0 {
		return chat.Message{}, false, chat.Errorf(chat.ENotFound, "No message %d in this chat.", req.MessageID)
	}
	target := found[0]
	switch {
	case target.Kind == chat.MessageSystem:
		return chat.Message{}, false, chat.Errorf(chat.EInvalid, "System messages cannot be edited or deleted.")
	case target.UserID != id.UserID:
		return chat.Message{}, false, chat.Errorf(chat.EForbidden, "You can edit and delete only your own messages.")
	case !req.Delete && target.Kind != chat.MessageText:
		return chat.Message{}, false, chat.Errorf(chat.EInvalid, "Only text messages can be edited.")
	}
	now := s.now().UTC()
	e := chat.Edit{
		ChatID: req.Chat.ID, UserID: id.UserID, TargetID: target.ID, Delete: req.Delete,
		EventClientID: req.ClientID, At: now,
	}
	if !req.Delete {
		e.KeyVersion, e.Body = s.ring.Seal([]byte(req.Text), messageAAD(target.ChatID, target.UserID, target.Kind, target.ClientID))
	}
	e.EventKeyVersion = s.ring.Current()
	kind := chat.MessageEdit
	if req.Delete {
		kind = chat.MessageDelete
	}
	res, err := s.submit(ctx, &request{done: make(chan result, 1), op: func(ctx context.Context) (any, []chat.Event, error) {
		out, err := s.store.EditMessage(ctx, e)
		if err != nil {
			return nil, nil, err
		}
		targets := []chat.Message{out.Target}
		s.openAll(targets)
		ev := chat.Message{
			ID: out.Event.ID, ChatID: req.Chat.ID, ChatName: req.Chat.Name, UserID: id.UserID, Username: id.Username,
			Kind: kind, ClientID: req.ClientID, CreatedAt: out.Event.CreatedAt, TargetID: target.ID, Target: &targets[0],
		}
		if !out.Event.Created {
			return changeResult{ev, false}, nil, nil
		}
		frame, _ := json.Marshal(wire.FromMessage(ev))
		return changeResult{ev, true}, []chat.Event{{ChatID: ev.ChatID, MessageID: ev.ID, Frame: frame}}, nil
	}})
	if err != nil {
		return chat.Message{}, false, err
	}
	cr := res.value.(changeResult)
	return cr.event, cr.created, nil
}

type changeResult struct {
	event   chat.Message
	created bool
}

// Chat limits.
const (
	MaxTitleBytes   = 100
	MaxGroupMembers = 10000
	maxAddAtOnce    = 256
)

// CheckTitle validates a group title: not blank, valid UTF-8, at most
// MaxTitleBytes, no control characters. It returns the title trimmed.
func CheckTitle(title string) (string, error) {
	if !utf8.ValidString(title) {
		return "", chat.Errorf(chat.EInvalid, "The title is not valid UTF-8.")
	}
	title = strings.TrimSpace(title)
	if title == "" {
		return "", chat.Errorf(chat.EInvalid, "A group needs a title.")
	}
	if len(title) > MaxTitleBytes {
		return "", chat.Errorf(chat.EInvalid, "The title is %d bytes; the limit is %d.", len(title), MaxTitleBytes)
	}
	for _, r := range title {
		if unicode.IsControl(r) {
			return "", chat.Errorf(chat.EInvalid, "The title contains a control character (U+%04X).", r)
		}
	}
	return title, nil
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

// sealer seals system messages for the store.
func (s *Service) sealer() chat.Sealer {
	return func(m *chat.NewMessage, plaintext []byte) {
		m.KeyVersion, m.Body = s.ring.Seal(plaintext, messageAAD(m.ChatID, m.UserID, m.Kind, m.ClientID))
	}
}

// CreateRequest asks for a new direct chat or group.
type CreateRequest struct {
	Kind    string   // chat.KindDirect or chat.KindGroup
	Title   string   // groups only
	Members []string // usernames besides the creator; exactly one for direct
}

// CreateChat starts a direct chat (or returns the existing one with created
// false) or creates a group owned by the asking user. The new members'
// connections are subscribed and told.
func (s *Service) CreateChat(ctx context.Context, id chat.Identity, req CreateRequest) (chat.ChatSummary, bool, error) {
	c := chat.Chat{Kind: req.Kind, CreatedBy: id.UserID, CreatedAt: s.now().UTC()}
	switch req.Kind {
	case chat.KindDirect:
		if len(req.Members) != 1 {
			return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "A direct chat has exactly one other member.")
		}
	case chat.KindGroup:
		title, err := CheckTitle(req.Title)
		if err != nil {
			return chat.ChatSummary{}, false, err
		}
		c.Title = title
		if len(req.Members) > maxAddAtOnce {
			return chat.ChatSummary{}, false, chat.Errorf(chat.EInvalid, "Add at most %d members at once.", maxAddAtOnce)
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
	ids := []int64{id.UserID}
	for _, u := range others {
		ids = append(ids, u.ID)
	}
	clientID := newClientID()
	res, err := s.submit(ctx, &request{done: make(chan result, 1), op: func(ctx context.Context) (any, []chat.Event, error) {
		created, change, err := s.store.CreateChat(ctx, &c, ids, s.sealer(), clientID)
		if err != nil || !created {
			return created, nil, err
		}
		events, err := s.changeEvents(ctx, c, id, change, ids)
		return created, events, err
	}})
	if err != nil {
		return chat.ChatSummary{}, false, err
	}
	sum, err := s.store.UserChat(ctx, id.UserID, c.ID)
	return sum, res.value.(bool), err
}

// changeEvents builds the events of a membership change, in the order
// clients must see them: new members subscribe and learn of the chat, the
// system messages go to the chat, a removed member hears of it last and
// is unsubscribed, and everyone still in the chat gets its new state.
func (s *Service) changeEvents(ctx context.Context, c chat.Chat, actor chat.Identity, change chat.ChatChange, joined []int64) ([]chat.Event, error) {
	members, err := s.store.Members(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	added := wire.ChatFrame{Type: wire.TypeChatAdded, Chat: wire.SharedChat(chat.ChatSummary{Chat: c, Members: members})}
	// Where a new member's client syncs from: just before the first
	// message of this change, so it gets that and everything after, not
	// the history it already has by GET /messages/.
	from := int64(0)
	if len(change.Messages) > 0 {
		from = change.Messages[0].ID - 1
	}
	added.Chat.LastMessageID = &from
	state, _ := json.Marshal(added)
	var events []chat.Event
	if len(joined) > 0 {
		events = append(events, chat.Event{ChatID: c.ID, UserIDs: joined, Membership: chat.MembershipJoin, Frame: state})
	}
	for i, ins := range change.Messages {
		if !ins.Created {
			continue
		}
		ev := change.System[i]
		m := chat.Message{
			ID: ins.ID, ChatID: c.ID, ChatName: c.Name, UserID: actor.UserID, Username: actor.Username,
			Kind: chat.MessageSystem, Text: SystemText(ev), System: &ev, CreatedAt: ins.CreatedAt,
		}
		frame, _ := json.Marshal(wire.FromMessage(m))
		events = append(events, chat.Event{ChatID: c.ID, MessageID: m.ID, Frame: frame})
	}
	if change.Removed != 0 {
		gone, _ := json.Marshal(wire.ChatRemoved{Type: wire.TypeChatRemoved, ChatID: c.ID, ChatName: c.Name})
		events = append(events, chat.Event{ChatID: c.ID, UserIDs: []int64{change.Removed}, Membership: chat.MembershipLeave, Frame: gone})
	}
	if c.Kind == chat.KindGroup {
		updated, _ := json.Marshal(wire.ChatFrame{Type: wire.TypeChatUpdated, Chat: wire.SharedChat(chat.ChatSummary{Chat: c, Members: members})})
		events = append(events, chat.Event{ChatID: c.ID, Frame: updated})
	}
	return events, nil
}

// group resolves a group the user belongs to and returns the user's role.
func (s *Service) group(ctx context.Context, id chat.Identity, c chat.Chat) (string, error) {
	if c.Kind != chat.KindGroup {
		return "", chat.Errorf(chat.EInvalid, "Only groups have members to add or remove, a title, or a way out.")
	}
	sum, err := s.store.UserChat(ctx, id.UserID, c.ID)
	if chat.ErrorCode(err) == chat.ENotFound {
		return "", errNoChat
	}
	return sum.Role, err
}

// AddMembers adds users to a group; only its owner may.
func (s *Service) AddMembers(ctx context.Context, id chat.Identity, c chat.Chat, names []string) (chat.ChatSummary, error) {
	role, err := s.group(ctx, id, c)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if role != chat.MemberOwner {
		return chat.ChatSummary{}, chat.Errorf(chat.EForbidden, "Only the group's owner can add members.")
	}
	if len(names) == 0 {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "Name at least one user to add.")
	}
	if len(names) > maxAddAtOnce {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "Add at most %d members at once.", maxAddAtOnce)
	}
	users, err := s.users(ctx, id, names)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	members, err := s.store.Members(ctx, c.ID)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if len(members)+len(users) > MaxGroupMembers {
		return chat.ChatSummary{}, chat.Errorf(chat.EInvalid, "A group holds at most %d members.", MaxGroupMembers)
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	clientID := newClientID()
	_, err = s.submit(ctx, &request{done: make(chan result, 1), op: func(ctx context.Context) (any, []chat.Event, error) {
		change, err := s.store.AddMembers(ctx, c.ID, id.UserID, ids, s.now().UTC(), s.sealer(), clientID)
		if err != nil || len(change.Added) == 0 {
			return nil, nil, err
		}
		joined := make([]int64, len(change.Added))
		for i, m := range change.Added {
			joined[i] = m.UserID
		}
		events, err := s.changeEvents(ctx, c, id, change, joined)
		return nil, events, err
	}})
	if err != nil {
		return chat.ChatSummary{}, err
	}
	return s.store.UserChat(ctx, id.UserID, c.ID)
}

// RemoveMember takes a user out of a group: the owner may remove anyone,
// and anyone may remove themselves (leave). When the owner leaves, the
// longest-standing member becomes owner.
func (s *Service) RemoveMember(ctx context.Context, id chat.Identity, c chat.Chat, username string) error {
	role, err := s.group(ctx, id, c)
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
	clientID := newClientID()
	_, err = s.submit(ctx, &request{done: make(chan result, 1), op: func(ctx context.Context) (any, []chat.Event, error) {
		change, err := s.store.RemoveMember(ctx, c.ID, id.UserID, u.ID, s.now().UTC(), s.sealer(), clientID)
		if chat.ErrorCode(err) == chat.ENotFound {
			return nil, nil, chat.Errorf(chat.ENotFound, "%s is not a member of this group.", u.Username)
		}
		if err != nil {
			return nil, nil, err
		}
		events, err := s.changeEvents(ctx, c, id, change, nil)
		return nil, events, err
	}})
	return err
}

// Rename sets a group's title; only its owner may.
func (s *Service) Rename(ctx context.Context, id chat.Identity, c chat.Chat, title string) (chat.ChatSummary, error) {
	role, err := s.group(ctx, id, c)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	if role != chat.MemberOwner {
		return chat.ChatSummary{}, chat.Errorf(chat.EForbidden, "Only the group's owner can rename it.")
	}
	title, err = CheckTitle(title)
	if err != nil {
		return chat.ChatSummary{}, err
	}
	clientID := newClientID()
	_, err = s.submit(ctx, &request{done: make(chan result, 1), op: func(ctx context.Context) (any, []chat.Event, error) {
		change, err := s.store.RenameChat(ctx, c.ID, id.UserID, title, s.now().UTC(), s.sealer(), clientID)
		if err != nil {
			return nil, nil, err
		}
		c.Title = title
		events, err := s.changeEvents(ctx, c, id, change, nil)
		return nil, events, err
	}})
	if err != nil {
		return chat.ChatSummary{}, err
	}
	return s.store.UserChat(ctx, id.UserID, c.ID)
}

// Chats lists the user's chats with unread counts, most recent first.
func (s *Service) Chats(ctx context.Context, id chat.Identity) ([]chat.ChatSummary, error) {
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

// SearchUsers finds active users by the start of their username.
func (s *Service) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	prefix = strings.TrimSpace(prefix)
	if !utf8.ValidString(prefix) || len(prefix) > 32 {
		return nil, chat.Errorf(chat.EInvalid, "q must be the start of a username (at most 32 characters).")
	}
	return s.store.SearchUsers(ctx, prefix, limit)
}

// SystemText renders a system event as an English sentence; clients that
// show another language render the event themselves.
func SystemText(ev chat.SystemEvent) string {
	switch ev.Event {
	case chat.EventCreated:
		if len(ev.Users) == 0 {
			return ev.Actor + " created the group “" + ev.Title + "”."
		}
		return ev.Actor + " created the group “" + ev.Title + "” with " + list(ev.Users) + "."
	case chat.EventAdded:
		return ev.Actor + " added " + list(ev.Users) + "."
	case chat.EventRemoved:
		return ev.Actor + " removed " + list(ev.Users) + "."
	case chat.EventLeft:
		return ev.Actor + " left."
	case chat.EventRenamed:
		return ev.Actor + " renamed the group to “" + ev.Title + "”."
	case chat.EventOwner:
		return list(ev.Users) + " is now the owner."
	}
	return ev.Actor + ": " + ev.Event
}

func list(names []string) string {
	switch len(names) {
	case 0:
		return "nobody"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
