package chats

import (
	"context"
	"encoding/json"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// The four kinds of change below go through the sequencer. Each commits its
// own store call; all of them then publish the same way (published): new
// members are subscribed and told of the chat, the system messages go to
// the chat, a removed member hears of it last, and everyone still in a
// group gets its new state.

// change is what every membership or title change carries: who makes it,
// the client id of its system messages, and where its answer goes.
type change struct {
	s        *Service
	actor    chat.Identity
	clientID string
	reply    chan sequencer.Result[bool]
}

func (s *Service) change(actor chat.Identity) change {
	return change{s: s, actor: actor, clientID: chat.NewClientID(), reply: sequencer.Reply[bool]()}
}

// changeWork is any of the four kinds of change.
type changeWork interface {
	sequencer.Work
	answer() chan sequencer.Result[bool]
}

// submit queues a change and waits until it has committed and published
// and, on several nodes, until every node has handled its events (see
// settle). The answer is createChat's "created"; the other kinds answer
// true.
func submit(ctx context.Context, s *Service, w changeWork) (bool, error) {
	if err := s.seq.Submit(ctx, w); err != nil {
		return false, err
	}
	ok, err := sequencer.Await(ctx, s.seq, w.answer())
	if err == nil {
		s.settle(ctx)
	}
	return ok, err
}

// barrier is what a broker among several nodes offers (broker.Redis):
// wait until every other node has handled the events this node published
// before the call.
type barrier interface {
	Barrier(ctx context.Context) error
}

// settle waits, on several nodes, until every other node has handled a
// change's events — forgotten what it cached of the chat and its members,
// subscribed or unsubscribed their connections — so that once the change
// is acknowledged, a removed member can neither send nor receive through
// any node. A node that does not answer in time is cut off from Redis; the
// change stands (it has committed), and that node rechecks its
// connections' chats when it is back (ARCHITECTURE.md, "Several nodes").
func (s *Service) settle(ctx context.Context) {
	b, ok := s.broker.(barrier)
	if !ok {
		return
	}
	if err := b.Barrier(ctx); err != nil {
		s.log.Warn("a membership change was not confirmed by every node", "err", err)
	}
}

func (c *change) answer() chan sequencer.Result[bool] { return c.reply }

// failed answers a change that did not commit.
func (c *change) failed(err error) sequencer.Publication {
	if chat.ErrorCode(err) == chat.EInternal {
		c.s.log.Error("commit chat change", "err", err)
	}
	return func(context.Context) { c.reply <- sequencer.Result[bool]{Err: err} }
}

// published builds the events of a committed change (reading the chat's
// members as they are now) and returns its publication, which sends them
// in order and then answers.
func (c *change) published(ctx context.Context, ch chat.Chat, cc chat.ChatChange, joined []int64, answer bool) sequencer.Publication {
	events, err := c.s.changeEvents(ctx, ch, c.actor, cc, joined)
	if err != nil {
		// Committed, but its events could not be built: the members catch
		// up through sync; the asker hears that something went wrong.
		return c.failed(err)
	}
	return func(ctx context.Context) {
		for _, ev := range events {
			c.s.publish(ctx, ev)
		}
		c.reply <- sequencer.Result[bool]{Value: answer}
	}
}

// createChat creates a direct chat or a group.
type createChat struct {
	change
	chat      chat.Chat // its ID is set by the commit
	memberIDs []int64   // the creator first
}

func (w *createChat) Commit(ctx context.Context) sequencer.Publication {
	ctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	created, cc, err := w.s.store.CreateChat(ctx, &w.chat, w.memberIDs, w.s.ring.SealMessage, w.clientID)
	if err != nil {
		return w.failed(err)
	}
	if !created {
		return func(context.Context) { w.reply <- sequencer.Result[bool]{Value: false} }
	}
	return w.published(ctx, w.chat, cc, w.memberIDs, true)
}

// addMembers adds users to a group.
type addMembers struct {
	change
	chat    chat.Chat
	userIDs []int64
}

func (w *addMembers) Commit(ctx context.Context) sequencer.Publication {
	ctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	cc, err := w.s.store.AddMembers(ctx, w.chat.ID, w.actor.UserID, w.userIDs, w.s.now().UTC(), w.s.ring.SealMessage, w.clientID)
	if err != nil {
		return w.failed(err)
	}
	if len(cc.Added) == 0 {
		return func(context.Context) { w.reply <- sequencer.Result[bool]{Value: true} }
	}
	joined := make([]int64, len(cc.Added))
	for i, m := range cc.Added {
		joined[i] = m.UserID
	}
	return w.published(ctx, w.chat, cc, joined, true)
}

// removeMember takes a user out of a group (or lets them leave).
type removeMember struct {
	change
	chat chat.Chat
	user chat.User
}

func (w *removeMember) Commit(ctx context.Context) sequencer.Publication {
	ctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	cc, err := w.s.store.RemoveMember(ctx, w.chat.ID, w.actor.UserID, w.user.ID, w.s.now().UTC(), w.s.ring.SealMessage, w.clientID)
	if chat.ErrorCode(err) == chat.ENotFound {
		err = chat.Errorf(chat.ENotFound, "%s is not a member of this group.", w.user.Username)
	}
	if err != nil {
		return w.failed(err)
	}
	return w.published(ctx, w.chat, cc, nil, true)
}

// renameChat sets a group's title.
type renameChat struct {
	change
	chat  chat.Chat
	title string
}

func (w *renameChat) Commit(ctx context.Context) sequencer.Publication {
	ctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	cc, err := w.s.store.RenameChat(ctx, w.chat.ID, w.actor.UserID, w.title, w.s.now().UTC(), w.s.ring.SealMessage, w.clientID)
	if err != nil {
		return w.failed(err)
	}
	renamed := w.chat
	renamed.Title = w.title
	return w.published(ctx, renamed, cc, nil, true)
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
		events = append(events, chat.Event{ChatID: c.ID, UserIDs: joined, Membership: chat.MembershipJoin, Prev: from, Frame: state, Forget: true})
	}
	for i, ins := range change.Messages {
		if !ins.Created {
			continue
		}
		ev := change.System[i]
		m := chat.Message{
			ID: ins.ID, ChatID: c.ID, ChatName: c.Name, UserID: actor.UserID, Username: actor.Username,
			Kind: chat.MessageSystem, Text: ev.Text(), System: &ev, CreatedAt: ins.CreatedAt,
		}
		frame, _ := json.Marshal(wire.FromMessage(m))
		events = append(events, chat.Event{ChatID: c.ID, MessageID: m.ID, Prev: ins.Prev, Frame: frame})
	}
	if change.Removed != 0 {
		gone, _ := json.Marshal(wire.ChatRemoved{Type: wire.TypeChatRemoved, ChatID: c.ID, ChatName: c.Name})
		events = append(events, chat.Event{ChatID: c.ID, UserIDs: []int64{change.Removed}, Membership: chat.MembershipLeave, Frame: gone, Forget: true})
	}
	if c.Kind == chat.KindGroup {
		updated, _ := json.Marshal(wire.ChatFrame{Type: wire.TypeChatUpdated, Chat: wire.SharedChat(chat.ChatSummary{Chat: c, Members: members})})
		events = append(events, chat.Event{ChatID: c.ID, Frame: updated, Forget: true})
	}
	return events, nil
}
