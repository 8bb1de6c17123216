// Package delivery is the path of a message: check it, seal it with the key
// ring, commit it through the sequencer (in groups), acknowledge it to the
// sender and publish it to the chat, in commit order. Edits and deletes take
// the same path. It also reads history back, opening each body.
package delivery

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// MaxGroup is the most messages committed in one transaction.
const MaxGroup = 1024

// Store is what the message path needs of the database.
type Store interface {
	// InsertMessages commits a group of messages in one transaction, in
	// order, idempotent on (user, client id): a pair already stored returns
	// the stored id with Created false and stores nothing.
	InsertMessages(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error)
	// EditMessage applies an edit or delete and inserts its event row, in
	// one transaction (see store.DB.EditMessage for its errors).
	EditMessage(ctx context.Context, e chat.Edit) (chat.EditResult, error)
	// MessagesBefore returns up to limit messages of a chat with id <
	// before (before <= 0: from the newest), oldest first, and whether
	// older ones exist.
	MessagesBefore(ctx context.Context, chatID, before int64, limit int) ([]chat.Message, bool, error)
	// MessagesAfter returns up to limit messages and events of a chat with
	// id > after, oldest first.
	MessagesAfter(ctx context.Context, chatID, after int64, limit int) ([]chat.Message, error)
	// MessagesByIDs returns the messages of a chat with the given ids, in
	// id order; ids of other chats or missing rows are left out.
	MessagesByIDs(ctx context.Context, chatID int64, ids []int64) ([]chat.Message, error)
	// MessagesWithIDs returns the messages with the given ids, whatever
	// their chats, in id order; missing rows are left out.
	MessagesWithIDs(ctx context.Context, ids []int64) ([]chat.Message, error)
	// FileByID finds a file; ENotFound when there is none.
	FileByID(ctx context.Context, id []byte) (chat.File, error)
	// FilesByIDs returns the files with the given ids; missing ones are
	// left out.
	FilesByIDs(ctx context.Context, ids [][]byte) ([]chat.File, error)
	// ChatByID finds a chat by id; ENotFound when there is none.
	ChatByID(ctx context.Context, id int64) (chat.Chat, error)
}

// E2EE checks the messages of end-to-end encrypted chats (keys.Service).
type E2EE interface {
	// CheckMessage checks an mse1 text against the chat's epochs and the
	// sender's devices, and counts it on its epoch: for edits.
	CheckMessage(ctx context.Context, id chat.Identity, c chat.Chat, text string) error
	// MessageUse checks an mse1 text's shape and returns the epoch and
	// device it names, which the store checks and counts as it stores the
	// message.
	MessageUse(id chat.Identity, c chat.Chat, text string) (chat.MessageUse, error)
}

// Options configure a Service.
type Options struct {
	// E2EE checks every message and edit of an end-to-end encrypted chat;
	// without it, such messages are refused.
	E2EE      E2EE
	Store     Store
	Ring      *keyring.Ring
	Sequencer *sequencer.Sequencer
	Broker    chat.Broker
	Log       *slog.Logger
	Now       func() time.Time
	// MaxMessageBytes is the largest message text accepted.
	MaxMessageBytes int
	// CommitTimeout bounds how long a message or change may take to commit,
	// counted from when it was sent: one still waiting for the committer
	// after it is answered "unavailable" without being stored, and a
	// commit that runs longer is given up (the database is frozen or
	// gone). The client sends it again later with the same client id,
	// which stores it at most once.
	CommitTimeout time.Duration
	// Metrics observe the commits; nil fields observe nothing.
	Metrics Metrics
}

// Observer takes one observation; a Prometheus histogram is one.
type Observer interface{ Observe(float64) }

// Metrics observe the message groups the committer stores.
type Metrics struct {
	GroupSize     Observer // messages in one transaction
	CommitSeconds Observer // time to store one group
}

type nopObserver struct{}

func (nopObserver) Observe(float64) {}

// Service sends messages, edits and deletes them, and reads history.
type Service struct {
	store    Store
	e2ee     E2EE
	ring     *keyring.Ring
	seq      *sequencer.Sequencer
	broker   chat.Broker
	log      *slog.Logger
	now      func() time.Time
	maxBytes int
	timeout  time.Duration // Options.CommitTimeout
	sends    *sequencer.Batch[*send]
	metrics  Metrics
}

// New returns a Service; the sequencer's Run commits its work. It panics
// without a CommitTimeout (a wiring mistake: every message would time out).
func New(o Options) *Service {
	if o.CommitTimeout <= 0 {
		panic("delivery: CommitTimeout must be positive")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{
		store: o.Store, e2ee: o.E2EE, ring: o.Ring, seq: o.Sequencer, broker: o.Broker, log: o.Log, now: o.Now, maxBytes: o.MaxMessageBytes,
		timeout: o.CommitTimeout, metrics: o.Metrics,
	}
	if s.metrics.GroupSize == nil {
		s.metrics.GroupSize = nopObserver{}
	}
	if s.metrics.CommitSeconds == nil {
		s.metrics.CommitSeconds = nopObserver{}
	}
	s.sends = sequencer.NewBatch(o.Sequencer, MaxGroup, s.commitSends)
	return s
}

// SendRequest is a message a user asks to send.
type SendRequest struct {
	Chat     chat.Chat // resolved, membership checked
	Kind     string
	Text     string
	ClientID string // optional; without it a resend cannot be recognised
	ReplyTo  int64  // optional: a message of the same chat this one answers
}

// Sent is the outcome of a send: the message as committed, and whether this
// send stored it (false when its client id had been stored before, in which
// case nothing was published again).
type Sent struct {
	Message chat.Message
	Created bool
}

// send is one message on its way through the sequencer.
type send struct {
	msg      chat.NewMessage
	chat     chat.Chat
	username string
	text     string
	reply    *chat.Message
	file     *chat.File
	deadline time.Time // answered unavailable, unstored, if not committing by then
	then     func(Sent, error)
}

// SendAsync checks and seals a message and queues it for the committer,
// without waiting, so that a connection can have several messages in the
// queue at once and they commit in one group. An error doing so is returned
// and then is not called; otherwise then is called once with the outcome,
// after the message's group has committed (or failed) and the message has
// been published. then runs on the sequencer's publisher and must not
// block.
func (s *Service) SendAsync(ctx context.Context, id chat.Identity, req SendRequest, then func(Sent, error)) error {
	m, err := s.prepare(ctx, id, req)
	if err != nil {
		return err
	}
	m.then = then
	return s.sends.Submit(ctx, m)
}

// prepare checks a message and seals it.
func (s *Service) prepare(ctx context.Context, id chat.Identity, req SendRequest) (*send, error) {
	if !req.Chat.E2EE {
		if err := chat.CheckText(req.Text, s.maxBytes); err != nil {
			return nil, err
		}
	}
	if err := chat.CheckClientID(req.ClientID); err != nil {
		return nil, err
	}
	if req.ClientID == "" && req.Chat.E2EE {
		return nil, chat.Errorf(chat.EE2EERequired, "An end-to-end encrypted message needs its client_id: it is bound into the ciphertext.")
	}
	if req.ClientID == "" {
		req.ClientID = chat.NewClientID()
	}
	if req.Kind == "" {
		req.Kind = chat.MessageText
	}
	if req.Chat.E2EE {
		// The text is ciphertext: its shape, epoch and device are checked,
		// never its content; a file travels inside it.
		if req.Kind != chat.MessageText {
			return nil, chat.Errorf(chat.EE2EERequired, "This chat is end-to-end encrypted: send the file inside an mse1 message, not as a file frame.")
		}
		if req.ReplyTo != 0 {
			// Only that the answered message exists: its preview travels
			// inside the encrypted message.
			if _, err := s.replyTarget(ctx, req.Chat, req.ReplyTo); err != nil {
				return nil, err
			}
		}
		if s.e2ee == nil {
			return nil, errNoE2EE
		}
		use, err := s.e2ee.MessageUse(id, req.Chat, req.Text)
		if err != nil {
			return nil, err
		}
		now := s.now()
		m := &send{
			msg: chat.NewMessage{
				ChatID: req.Chat.ID, UserID: id.UserID, Kind: req.Kind, ClientID: req.ClientID,
				CreatedAt: now.UTC(), ReplyTo: req.ReplyTo, Use: &use,
			},
			chat: req.Chat, username: id.Username, text: req.Text, deadline: now.Add(s.timeout),
		}
		s.ring.SealMessage(&m.msg, []byte(req.Text))
		return m, nil
	}
	var file *chat.File
	if req.Kind == chat.MessageFile {
		var err error
		if file, err = s.postableFile(ctx, id, req.Chat, req.Text); err != nil {
			return nil, err
		}
		req.Text = wire.FileURL(file.ID)
	}
	var reply *chat.Message
	if req.ReplyTo != 0 {
		var err error
		if reply, err = s.replyTarget(ctx, req.Chat, req.ReplyTo); err != nil {
			return nil, err
		}
	}
	now := s.now()
	m := &send{
		msg: chat.NewMessage{
			ChatID: req.Chat.ID, UserID: id.UserID, Kind: req.Kind, ClientID: req.ClientID,
			CreatedAt: now.UTC(), ReplyTo: req.ReplyTo,
		},
		chat: req.Chat, username: id.Username, text: req.Text, reply: reply, file: file, deadline: now.Add(s.timeout),
	}
	s.ring.SealMessage(&m.msg, []byte(req.Text))
	return m, nil
}

// checkEncrypted checks the text of a message or edit of an end-to-end
// encrypted chat.
func (s *Service) checkEncrypted(ctx context.Context, id chat.Identity, c chat.Chat, text string) error {
	if s.e2ee == nil {
		return errNoE2EE
	}
	return s.e2ee.CheckMessage(ctx, id, c, text)
}

// errNoE2EE answers an encrypted chat's message on a service wired without
// end-to-end encryption.
var errNoE2EE = chat.Errorf(chat.EUnavailable, "This server cannot take end-to-end encrypted messages.")

// fileIDFromText reads the file id out of a file message's text:
// "/file/<32 hex digits>".
func fileIDFromText(text string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "/file/")
	if !ok || len(rest) != 32 {
		return nil, false
	}
	id, err := hex.DecodeString(rest)
	return id, err == nil
}

// postableFile checks that a file message names a file the user uploaded
// to this very chat, and that it is still there.
func (s *Service) postableFile(ctx context.Context, id chat.Identity, c chat.Chat, text string) (*chat.File, error) {
	fileID, ok := fileIDFromText(text)
	if !ok {
		return nil, chat.Errorf(chat.EInvalid, "A file message's text is the file's URL, /file/<id>, as the upload returned it.")
	}
	f, err := s.store.FileByID(ctx, fileID)
	if chat.ErrorCode(err) == chat.ENotFound || (err == nil && f.ChatID != c.ID) {
		return nil, chat.Errorf(chat.EInvalid, "No such file in this chat: upload it to this chat first.")
	}
	if err != nil {
		return nil, err
	}
	if f.UploaderID != id.UserID {
		return nil, chat.Errorf(chat.EForbidden, "You can post only files you uploaded.")
	}
	if !f.ExpiredAt.IsZero() {
		return nil, chat.Errorf(chat.EInvalid, "That file has expired.")
	}
	return &f, nil
}

// replyTarget loads the message a reply answers: a message (not an event)
// of the same chat.
func (s *Service) replyTarget(ctx context.Context, c chat.Chat, id int64) (*chat.Message, error) {
	if id < 0 {
		return nil, chat.Errorf(chat.EInvalid, "reply_to must be a message id.")
	}
	msgs, err := s.store.MessagesByIDs(ctx, c.ID, []int64{id})
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 || msgs[0].TargetID != 0 {
		return nil, chat.Errorf(chat.EInvalid, "reply_to names no message in this chat.")
	}
	s.openAll(msgs)
	return &msgs[0], nil
}

// errTooSlow answers a message or change that could not commit in time.
var errTooSlow = chat.Errorf(chat.EUnavailable, "The server could not store this in time: the database is slow or unreachable. Send it again with the same client_id.")

// commitSends stores a group of messages in one transaction. Messages that
// waited past their deadline are answered errTooSlow instead, unstored. If
// the group fails, each message is tried alone, so that one bad row fails
// only its own sender. Runs on the committer.
func (s *Service) commitSends(ctx context.Context, group []*send) sequencer.Publication {
	now := s.now()
	if late := slices.IndexFunc(group, func(m *send) bool { return now.After(m.deadline) }); late >= 0 {
		var live, expired []*send
		for _, m := range group {
			if now.After(m.deadline) {
				expired = append(expired, m)
			} else {
				live = append(live, m)
			}
		}
		var commit sequencer.Publication
		if len(live) > 0 {
			commit = s.commitSends(ctx, live)
		}
		return func(ctx context.Context) {
			for _, m := range expired {
				m.then(Sent{}, errTooSlow)
			}
			if commit != nil {
				commit(ctx)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	msgs := make([]chat.NewMessage, len(group))
	for i, m := range group {
		msgs[i] = m.msg
	}
	start := time.Now()
	inserted, err := s.store.InsertMessages(ctx, msgs)
	if err == nil {
		s.metrics.CommitSeconds.Observe(time.Since(start).Seconds())
		s.metrics.GroupSize.Observe(float64(len(msgs)))
	}
	if err != nil && len(group) > 1 {
		pubs := make([]sequencer.Publication, len(group))
		for i, m := range group {
			pubs[i] = s.commitSends(ctx, []*send{m})
		}
		return func(ctx context.Context) {
			for _, p := range pubs {
				p(ctx)
			}
		}
	}
	if err != nil {
		s.logFailure("commit message", err, "chat_id", group[0].msg.ChatID)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", errTooSlow, err)
		}
		m := group[0]
		return func(context.Context) { m.then(Sent{}, err) }
	}
	group = slices.Clone(group) // the sequencer reuses its slice
	done := make([]Sent, len(group))
	prev := make([]int64, len(group))
	for i, m := range group {
		ins := inserted[i]
		prev[i] = ins.Prev
		msg := chat.Message{
			ID: ins.ID, ChatID: ins.ChatID, ChatName: m.chat.Name, UserID: m.msg.UserID, Username: m.username,
			Kind: m.msg.Kind, Text: m.text, ClientID: m.msg.ClientID, CreatedAt: ins.CreatedAt,
			ReplyTo: m.msg.ReplyTo, Reply: m.reply, File: m.file,
		}
		if !ins.Created && ins.ChatID != m.chat.ID {
			// The client reused an id it had used in another chat; report the
			// stored message, in its own chat.
			if c, err := s.store.ChatByID(ctx, ins.ChatID); err == nil {
				msg.ChatName = c.Name
			}
		}
		done[i] = Sent{Message: msg, Created: ins.Created}
	}
	return func(ctx context.Context) {
		for i, m := range group {
			if done[i].Created {
				s.publish(ctx, done[i].Message, prev[i])
			}
			m.then(done[i], nil)
		}
	}
}

// publish hands a committed message or change to the broker, encoded once
// for every member. A committed change that fails to publish is not lost:
// clients catch up through sync.
// prev is the chat's message before it (chat.Inserted.Prev).
func (s *Service) publish(ctx context.Context, m chat.Message, prev int64) {
	frame, err := json.Marshal(wire.FromMessage(m))
	if err != nil {
		s.log.Error("encode message frame", "message_id", m.ID, "err", err)
		return
	}
	ev := chat.Event{ChatID: m.ChatID, MessageID: m.ID, Prev: prev, Frame: frame}
	if err := s.broker.Publish(ctx, ev); err != nil {
		s.log.Warn("publish message", "chat_id", ev.ChatID, "message_id", ev.MessageID, "err", err)
	}
}

// logFailure logs a commit that failed for a reason the client cannot fix:
// a fault (internal) or a database that is frozen or gone (unavailable). A
// refused row is the client's answer, not news.
func (s *Service) logFailure(what string, err error, attrs ...any) {
	switch chat.ErrorCode(err) {
	case chat.EInternal:
		s.log.Error(what, append(attrs, "err", err)...)
	case chat.EUnavailable:
		s.log.Warn(what, append(attrs, "err", err)...)
	}
}

// ChangeRequest is an edit or delete of one of the user's own messages.
type ChangeRequest struct {
	Chat      chat.Chat // resolved, membership checked
	MessageID int64
	Delete    bool
	Text      string // the new text of an edit
	ClientID  string // optional; makes a retried change idempotent
}

// Changed is the outcome of a change: its event (kind edit or delete,
// Target the message as it is now), and whether this call made it (false
// for a retried client id, in which case nothing was published again).
type Changed struct {
	Event   chat.Message
	Created bool
}

// Change edits or deletes a message and publishes the change, and returns
// once it has committed.
func (s *Service) Change(ctx context.Context, id chat.Identity, req ChangeRequest) (Changed, error) {
	if !req.Delete && !req.Chat.E2EE {
		if err := chat.CheckText(req.Text, s.maxBytes); err != nil {
			return Changed{}, err
		}
	}
	if err := chat.CheckClientID(req.ClientID); err != nil {
		return Changed{}, err
	}
	if req.ClientID == "" {
		req.ClientID = chat.NewClientID()
	}
	if req.MessageID <= 0 {
		return Changed{}, chat.Errorf(chat.EInvalid, "message_id must name a message.")
	}
	// Check early, to seal the new text for the target's row; the store
	// checks again inside its transaction.
	found, err := s.store.MessagesByIDs(ctx, req.Chat.ID, []int64{req.MessageID})
	if err != nil {
		return Changed{}, err
	}
	if len(found) == 0 || found[0].TargetID != 0 {
		return Changed{}, chat.Errorf(chat.ENotFound, "No message %d in this chat.", req.MessageID)
	}
	target := found[0]
	switch {
	case target.Kind == chat.MessageSystem:
		return Changed{}, chat.Errorf(chat.EInvalid, "System messages cannot be edited or deleted.")
	case target.UserID != id.UserID:
		return Changed{}, chat.Errorf(chat.EForbidden, "You can edit and delete only your own messages.")
	case !req.Delete && target.Kind != chat.MessageText:
		return Changed{}, chat.Errorf(chat.EInvalid, "Only text messages can be edited.")
	}
	if !req.Delete && req.Chat.E2EE {
		// An edit carries new ciphertext, on the current epoch.
		if err := s.checkEncrypted(ctx, id, req.Chat, req.Text); err != nil {
			return Changed{}, err
		}
	}
	w := &change{
		s: s, chat: req.Chat, by: id, reply: sequencer.Reply[Changed](), deadline: s.now().Add(s.timeout),
		edit: chat.Edit{
			ChatID: req.Chat.ID, UserID: id.UserID, TargetID: target.ID, Delete: req.Delete,
			EventKeyVersion: s.ring.Current(), EventClientID: req.ClientID, At: s.now().UTC(),
		},
	}
	if !req.Delete {
		w.edit.KeyVersion, w.edit.Body = s.ring.Seal([]byte(req.Text), keyring.MessageAAD(target.ChatID, target.UserID, target.Kind, target.ClientID))
	}
	if err := s.seq.Submit(ctx, w); err != nil {
		return Changed{}, err
	}
	// The answer comes by the deadline, or within one commit's time of
	// it; a little more is allowed for the publisher.
	wait, cancel := context.WithDeadline(ctx, w.deadline.Add(s.timeout+time.Second))
	defer cancel()
	changed, err := sequencer.Await(wait, s.seq, w.reply)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (%w)", errTooSlow, err)
	}
	return changed, err
}

// change is an edit or delete on its way through the sequencer.
type change struct {
	s        *Service
	chat     chat.Chat
	by       chat.Identity
	edit     chat.Edit
	deadline time.Time // answered unavailable, unstored, if not committing by then
	reply    chan sequencer.Result[Changed]
}

// Commit applies the change and its event row in one transaction.
func (w *change) Commit(ctx context.Context) sequencer.Publication {
	if w.s.now().After(w.deadline) {
		return func(context.Context) { w.reply <- sequencer.Result[Changed]{Err: errTooSlow} }
	}
	ctx, cancel := context.WithTimeout(ctx, w.s.timeout)
	defer cancel()
	out, err := w.s.store.EditMessage(ctx, w.edit)
	if err != nil {
		w.s.logFailure("commit change", err, "chat_id", w.chat.ID)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", errTooSlow, err)
		}
		return func(context.Context) { w.reply <- sequencer.Result[Changed]{Err: err} }
	}
	targets := []chat.Message{out.Target}
	w.s.openAll(targets)
	kind := chat.MessageEdit
	if w.edit.Delete {
		kind = chat.MessageDelete
	}
	ev := chat.Message{
		ID: out.Event.ID, ChatID: w.chat.ID, ChatName: w.chat.Name, UserID: w.by.UserID, Username: w.by.Username,
		Kind: kind, ClientID: w.edit.EventClientID, CreatedAt: out.Event.CreatedAt, TargetID: w.edit.TargetID, Target: &targets[0],
	}
	return func(ctx context.Context) {
		if out.Event.Created {
			w.s.publish(ctx, ev, out.Event.Prev)
		}
		w.reply <- sequencer.Result[Changed]{Value: Changed{Event: ev, Created: out.Event.Created}}
	}
}

// History returns a keyset page of a chat, oldest first, and whether older
// messages exist. The caller has resolved the chat (membership checked).
// Each message is in its current state: edited text, or wiped if deleted.
func (s *Service) History(ctx context.Context, c chat.Chat, before int64, limit int) ([]chat.Message, bool, error) {
	msgs, more, err := s.store.MessagesBefore(ctx, c.ID, before, limit)
	if err != nil {
		return nil, false, err
	}
	return msgs, more, s.complete(ctx, c, msgs)
}

// LastMessages returns the newest message of each of the given chats (as
// the chat list of their member shows them) by chat id, opened, with its
// file: what the list previews. An end-to-end encrypted chat's message is
// given without its text, which the server cannot read (its system
// messages, which the server writes, are opened); a chat with no message
// has none.
func (s *Service) LastMessages(ctx context.Context, sums []chat.ChatSummary) (map[int64]chat.Message, error) {
	ids := make([]int64, 0, len(sums))
	encrypted := make(map[int64]bool)
	for _, sum := range sums {
		if sum.LastMessageID != 0 {
			ids = append(ids, sum.LastMessageID)
			encrypted[sum.ID] = sum.E2EE
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	msgs, err := s.store.MessagesWithIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	var readable []chat.Message
	out := make(map[int64]chat.Message, len(msgs))
	for _, m := range msgs {
		if encrypted[m.ChatID] && m.Kind != chat.MessageSystem {
			m.Body, m.Text = nil, ""
			out[m.ChatID] = m
			continue
		}
		readable = append(readable, m)
	}
	s.openAll(readable)
	byID := make(map[int64]*chat.Message, len(readable))
	for i := range readable {
		byID[readable[i].ID] = &readable[i]
	}
	if err := s.attachFiles(ctx, byID); err != nil {
		return nil, err
	}
	for _, m := range readable {
		out[m.ChatID] = m
	}
	return out, nil
}

// After returns up to limit messages and change events after an id, oldest
// first: what a reconnecting client has missed.
func (s *Service) After(ctx context.Context, c chat.Chat, after int64, limit int) ([]chat.Message, error) {
	msgs, err := s.store.MessagesAfter(ctx, c.ID, after, limit)
	if err != nil {
		return nil, err
	}
	return msgs, s.complete(ctx, c, msgs)
}

// complete opens a page and links what its frames show: the message each
// reply answers and the current state of each event's target, loading
// those not on the page.
func (s *Service) complete(ctx context.Context, c chat.Chat, msgs []chat.Message) error {
	s.openAll(msgs)
	byID := make(map[int64]*chat.Message, len(msgs))
	for i := range msgs {
		byID[msgs[i].ID] = &msgs[i]
	}
	var missing []int64
	for _, m := range msgs {
		for _, ref := range []int64{m.ReplyTo, m.TargetID} {
			if ref != 0 && byID[ref] == nil && !slices.Contains(missing, ref) {
				missing = append(missing, ref)
			}
		}
	}
	if len(missing) > 0 {
		extra, err := s.store.MessagesByIDs(ctx, c.ID, missing)
		if err != nil {
			return err
		}
		s.openAll(extra)
		for i := range extra {
			byID[extra[i].ID] = &extra[i]
		}
	}
	if err := s.attachFiles(ctx, byID); err != nil {
		return err
	}
	for i := range msgs {
		m := &msgs[i]
		if m.ReplyTo != 0 && !c.E2EE {
			// In an end-to-end encrypted chat the preview travels inside
			// the message; the server makes none.
			if ref := byID[m.ReplyTo]; ref != nil {
				cp := *ref
				cp.Reply, cp.Target = nil, nil
				m.Reply = &cp
			}
		}
		if m.TargetID != 0 {
			if ref := byID[m.TargetID]; ref != nil {
				cp := *ref
				cp.Reply, cp.Target = nil, nil
				m.Target = &cp
			}
		}
	}
	return nil
}

// attachFiles links every file message among msgs (a page and the messages
// it refers to) to its file, in one query.
func (s *Service) attachFiles(ctx context.Context, msgs map[int64]*chat.Message) error {
	var ids [][]byte
	for _, m := range msgs {
		if m.Kind == chat.MessageFile && m.DeletedAt.IsZero() {
			if id, ok := fileIDFromText(m.Text); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := s.store.FilesByIDs(ctx, ids)
	if err != nil {
		return err
	}
	byFile := make(map[string]*chat.File, len(found))
	for i := range found {
		byFile[string(found[i].ID)] = &found[i]
	}
	for _, m := range msgs {
		if m.Kind == chat.MessageFile {
			if id, ok := fileIDFromText(m.Text); ok {
				m.File = byFile[string(id)]
			}
		}
	}
	return nil
}

// unreadable replaces a body that fails to open. The failure is logged; the
// rest of the page is still served.
const unreadable = "[this message could not be decrypted]"

// openAll opens every message body of a page. Events carry no body; a
// system message's body is its event, rendered as an English sentence.
func (s *Service) openAll(msgs []chat.Message) {
	for i := range msgs {
		m := &msgs[i]
		if !m.DeletedAt.IsZero() || m.TargetID != 0 || m.Kind == chat.MessageEdit || m.Kind == chat.MessageDelete {
			continue
		}
		text, err := s.ring.OpenMessage(m)
		if err != nil {
			s.log.Error("open message body", "message_id", m.ID, "key_version", m.KeyVersion, "err", err)
			m.Text = unreadable
			continue
		}
		if m.Kind == chat.MessageSystem {
			var ev chat.SystemEvent
			if err := json.Unmarshal(text, &ev); err != nil {
				s.log.Error("decode system message", "message_id", m.ID, "err", err)
				m.Text = unreadable
				continue
			}
			m.System = &ev
			m.Text = ev.Text()
			continue
		}
		m.Text = string(text)
	}
}
