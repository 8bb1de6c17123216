// Package delivery is the path of a message: check it, seal it with the key
// ring, commit it in groups, acknowledge it to the sender and publish it to
// the chat, in commit order. It also reads history back, opening each body.
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// Limits of the commit groups.
const (
	maxGroup   = 1024
	queueDepth = 4096
	// pubDepth is how many committed groups may wait for the publisher
	// before the committer waits for it.
	pubDepth = 64
)

// MaxClientIDLen is the longest client id accepted.
const MaxClientIDLen = 64

// Service sends messages and reads history.
type Service struct {
	store    chat.Store
	ring     *keyring.Ring
	broker   chat.Broker
	log      *slog.Logger
	now      func() time.Time
	maxBytes int

	requests chan *request
	// pubs carries committed work, in commit order, to the publisher,
	// which publishes it and hands the requests their results.
	pubs    chan func(ctx context.Context)
	stopped chan struct{} // closed when the committer and the publisher have exited
}

// request is one unit of the committer's work: a message to insert (grouped
// with its neighbours), or an op that runs alone in its own transaction
// (edits, membership changes) and returns the events to publish.
type request struct {
	msg      chat.NewMessage
	chat     chat.Chat
	username string
	text     string
	reply    *chat.Message
	file     *chat.File
	op       func(ctx context.Context) (any, []chat.Event, error)
	// The result goes to done, or, for a request queued with SendAsync,
	// to then, which the committer calls.
	done chan result
	then func(result)
}

// finish hands a request its result.
func (r *request) finish(res result) {
	if r.then != nil {
		r.then(res)
		return
	}
	r.done <- res
}

type result struct {
	msg     chat.Message
	created bool
	value   any
	err     error
}

// Options configure a Service.
type Options struct {
	Store           chat.Store
	Ring            *keyring.Ring
	Broker          chat.Broker
	Log             *slog.Logger
	Now             func() time.Time
	MaxMessageBytes int
}

// New returns a Service; call Run to start its committer.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{
		store: o.Store, ring: o.Ring, broker: o.Broker, log: o.Log, now: o.Now, maxBytes: o.MaxMessageBytes,
		requests: make(chan *request, queueDepth),
		pubs:     make(chan func(ctx context.Context), pubDepth),
		stopped:  make(chan struct{}),
	}
}

// MaxMessageBytes is the largest message text accepted, in bytes.
func (s *Service) MaxMessageBytes() int { return s.maxBytes }

// messageAAD binds a sealed body to its row: the chat, the sender, the kind
// and the client id. A body copied to another row does not open.
func messageAAD(chatID, userID int64, kind, clientID string) []byte {
	aad := make([]byte, 0, 32+len(kind)+len(clientID))
	aad = append(aad, "mapsim-chat/v1/message\x00"...)
	aad = binary.BigEndian.AppendUint64(aad, uint64(chatID))
	aad = binary.BigEndian.AppendUint64(aad, uint64(userID))
	aad = append(aad, kind...)
	aad = append(aad, 0)
	return append(aad, clientID...)
}

// CheckText validates a message's text: valid UTF-8, not blank, within the
// size limit, and free of control characters other than newline and tab.
func (s *Service) CheckText(text string) error {
	if len(text) > s.maxBytes {
		return chat.Errorf(chat.ETooLarge, "The message is %d bytes; the limit is %d.", len(text), s.maxBytes)
	}
	if !utf8.ValidString(text) {
		return chat.Errorf(chat.EInvalid, "The message is not valid UTF-8.")
	}
	if strings.TrimSpace(text) == "" {
		return chat.Errorf(chat.EInvalid, "The message is empty.")
	}
	for _, r := range text {
		if r == utf8.RuneError || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return chat.Errorf(chat.EInvalid, "The message contains a control character (U+%04X).", r)
		}
	}
	return nil
}

// CheckClientID validates a client id: up to 64 characters of letters,
// digits and "-_.:".
func CheckClientID(id string) error {
	if len(id) > MaxClientIDLen {
		return chat.Errorf(chat.EInvalid, "client_id is longer than %d characters.", MaxClientIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return chat.Errorf(chat.EInvalid, "client_id may hold only letters, digits and - _ . :")
		}
	}
	return nil
}

var errNoChat = chat.Errorf(chat.EForbidden, "No such chat, or you are not a member of it.")

// ResolveChat finds a chat by numeric id or by name and checks that the user
// is a member. A missing chat and a chat the user is not in get the same
// answer, so a non-member learns nothing about it.
func (s *Service) ResolveChat(ctx context.Context, id chat.Identity, ref string) (chat.Chat, error) {
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

// SendRequest is a message a user asks to send.
type SendRequest struct {
	Chat     chat.Chat // resolved, membership checked
	Kind     string
	Text     string
	ClientID string // optional; without it a resend cannot be recognised
	ReplyTo  int64  // optional: a message of the same chat this one answers
}

// Send checks, seals and commits a message, then publishes it. It returns
// once the message is committed; created is false when the client id had
// already been stored, in which case nothing is published again.
func (s *Service) Send(ctx context.Context, id chat.Identity, req SendRequest) (chat.Message, bool, error) {
	r, err := s.prepare(ctx, id, req)
	if err != nil {
		return chat.Message{}, false, err
	}
	r.done = make(chan result, 1)
	res, err := s.submit(ctx, r)
	return res.msg, res.created, err
}

// SendAsync is Send without the wait, so that a connection can have
// several messages in the committer's queue at once: it checks and seals
// the message and queues it. An error doing so is returned and then is not
// called; otherwise then is called once, with the outcome, after the
// message's group commits (or fails) and the message is published. then
// must not block: it runs in the publisher.
func (s *Service) SendAsync(ctx context.Context, id chat.Identity, req SendRequest, then func(m chat.Message, created bool, err error)) error {
	r, err := s.prepare(ctx, id, req)
	if err != nil {
		return err
	}
	r.then = func(res result) { then(res.msg, res.created, res.err) }
	select {
	case s.requests <- r:
		return nil
	case <-s.stopped:
		return errShuttingDown
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare checks a message and seals it into a committer request.
func (s *Service) prepare(ctx context.Context, id chat.Identity, req SendRequest) (*request, error) {
	if err := s.CheckText(req.Text); err != nil {
		return nil, err
	}
	if err := CheckClientID(req.ClientID); err != nil {
		return nil, err
	}
	if req.ClientID == "" {
		req.ClientID = newClientID()
	}
	if req.Kind == "" {
		req.Kind = chat.MessageText
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
	version, body := s.ring.Seal([]byte(req.Text), messageAAD(req.Chat.ID, id.UserID, req.Kind, req.ClientID))
	r := &request{
		msg: chat.NewMessage{
			ChatID: req.Chat.ID, UserID: id.UserID, Kind: req.Kind, KeyVersion: version, Body: body,
			ClientID: req.ClientID, CreatedAt: s.now().UTC(), ReplyTo: req.ReplyTo,
		},
		chat: req.Chat, username: id.Username, text: req.Text, reply: reply, file: file,
	}
	return r, nil
}

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

// newClientID makes a client id for a message or event whose client gave
// none.
func newClientID() string {
	b := make([]byte, 15)
	rand.Read(b)
	return "srv-" + base64.RawURLEncoding.EncodeToString(b)
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

// submit hands a request to the committer and waits for its result.
func (s *Service) submit(ctx context.Context, r *request) (result, error) {
	select {
	case s.requests <- r:
	case <-s.stopped:
		return result{}, errShuttingDown
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-s.stopped:
		// The committer may have taken it in its last group; check.
		select {
		case res := <-r.done:
			return res, res.err
		default:
		}
		return result{}, errShuttingDown
	case <-ctx.Done():
		// The change may still commit; a resend with the same client id
		// is recognised.
		return result{}, ctx.Err()
	}
}

var errShuttingDown = chat.Errorf(chat.EUnavailable, "The server is shutting down; send again after reconnecting.")

// Run commits queued work until ctx ends, then commits what is already
// queued and returns. Messages are committed in groups; an op runs alone,
// between the groups before and after it. Publishing happens after each
// commit and in id order, so every connection sees a chat's messages,
// edits and membership changes in order: the committer hands each commit
// to a publisher goroutine, which publishes it and then answers its
// requests, while the committer goes on with the next group. (Publishing a
// group, encoding each message and queueing it to every member's
// connection, was a third of the committer's time.)
func (s *Service) Run(ctx context.Context) {
	// Work already taken is finished even after ctx ends.
	wctx := context.WithoutCancel(ctx)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for p := range s.pubs {
			p(wctx)
		}
	}()
	defer func() {
		close(s.pubs)
		<-published
		close(s.stopped)
	}()
	group := make([]*request, 0, maxGroup)
	for {
		var r *request
		select {
		case r = <-s.requests:
		case <-ctx.Done():
			for {
				select {
				case r := <-s.requests:
					s.process(wctx, r, group)
				default:
					return
				}
			}
		}
		s.process(wctx, r, group)
	}
}

// hand queues committed work for the publisher, in commit order.
func (s *Service) hand(p func(ctx context.Context)) { s.pubs <- p }

// process commits r and whatever is queued behind it, up to the next op.
func (s *Service) process(ctx context.Context, r *request, group []*request) {
	for r != nil {
		if r.op != nil {
			s.runOp(ctx, r)
			return
		}
		group = append(group[:0], r)
		r = nil
	drain:
		for len(group) < maxGroup {
			select {
			case next := <-s.requests:
				if next.op != nil {
					r = next
					break drain
				}
				group = append(group, next)
			default:
				break drain
			}
		}
		s.commit(ctx, group)
	}
}

// runOp runs one op and publishes its events in order.
func (s *Service) runOp(ctx context.Context, r *request) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	value, events, err := r.op(ctx)
	if err != nil {
		if chat.ErrorCode(err) == chat.EInternal {
			s.log.Error("commit change", "err", err)
		}
		s.hand(func(context.Context) { r.finish(result{err: err}) })
		return
	}
	s.hand(func(ctx context.Context) {
		for _, ev := range events {
			s.publish(ctx, ev)
		}
		r.finish(result{value: value})
	})
}

// publish hands an event to the broker. A committed change that fails to
// publish is not lost: clients catch up through sync.
func (s *Service) publish(ctx context.Context, ev chat.Event) {
	if err := s.broker.Publish(ctx, ev); err != nil {
		s.log.Warn("publish event", "chat_id", ev.ChatID, "message_id", ev.MessageID, "err", err)
	}
}

// commit stores a group in one transaction. If the group fails, each
// message is tried alone so that one bad row does not fail its neighbours.
func (s *Service) commit(ctx context.Context, group []*request) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msgs := make([]chat.NewMessage, len(group))
	for i, r := range group {
		msgs[i] = r.msg
	}
	inserted, err := s.store.InsertMessages(ctx, msgs)
	if err != nil && len(group) > 1 {
		for _, r := range group {
			s.commit(ctx, []*request{r})
		}
		return
	}
	if err != nil {
		if chat.ErrorCode(err) == chat.EInternal {
			s.log.Error("commit message", "chat_id", group[0].msg.ChatID, "err", err)
		}
		r := group[0]
		s.hand(func(context.Context) { r.finish(result{err: err}) })
		return
	}
	done := make([]result, len(group))
	for i, r := range group {
		ins := inserted[i]
		m := chat.Message{
			ID: ins.ID, ChatID: ins.ChatID, ChatName: r.chat.Name, UserID: r.msg.UserID, Username: r.username,
			Kind: r.msg.Kind, Text: r.text, ClientID: r.msg.ClientID, CreatedAt: ins.CreatedAt,
			ReplyTo: r.msg.ReplyTo, Reply: r.reply, File: r.file,
		}
		if !ins.Created && ins.ChatID != r.chat.ID {
			// The client reused an id it had used in another chat; report the
			// stored message, in its own chat.
			if c, err := s.store.ChatByID(ctx, ins.ChatID); err == nil {
				m.ChatName = c.Name
			}
		}
		done[i] = result{msg: m, created: ins.Created}
	}
	group = slices.Clone(group) // the committer reuses its slice
	s.hand(func(ctx context.Context) {
		for i, r := range group {
			if m := done[i].msg; done[i].created {
				frame, _ := json.Marshal(wire.FromMessage(m))
				s.publish(ctx, chat.Event{ChatID: m.ChatID, MessageID: m.ID, Frame: frame})
			}
			r.finish(done[i])
		}
	})
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
		if m.ReplyTo != 0 {
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
		text, err := s.ring.Open(m.KeyVersion, m.Body, messageAAD(m.ChatID, m.UserID, m.Kind, m.ClientID))
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
			m.Text = SystemText(ev)
			continue
		}
		m.Text = string(text)
	}
}
