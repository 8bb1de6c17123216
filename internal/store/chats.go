package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// distinct returns ids in their first order without repeats.
func distinct(ids []int64) []int64 {
	out := make([]int64, 0, len(ids))
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// usernames maps user ids to usernames; an id with no user is ENotFound.
func usernames(ctx context.Context, q querier, ids []int64) (map[int64]string, error) {
	names := make(map[int64]string, len(ids))
	for start := 0; start < len(ids); start += idBatch {
		batch := ids[start:min(start+idBatch, len(ids))]
		args := appendIDs(make([]any, 0, len(batch)), batch)
		rows, err := q.QueryContext(ctx, `SELECT u.id, `+shownName+` FROM users u WHERE u.id IN (`+placeholders(len(batch))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read usernames: %w", err)
		}
		for rows.Next() {
			var (
				id   int64
				name string
			)
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read usernames: %w", err)
			}
			names[id] = name
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read usernames: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read usernames: %w", err)
		}
	}
	for _, id := range ids {
		if _, ok := names[id]; !ok {
			return nil, chat.Errorf(chat.ENotFound, "There is no user with id %d.", id)
		}
	}
	return names, nil
}

// randomGroupName returns a fresh name for a group. Groups are found by id
// and shown by title; the name only has to be unique, and a random one does
// not tell outsiders how many groups exist.
func randomGroupName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "group:" + hex.EncodeToString(b)
}

// insertSystem seals and inserts one system message recording ev.
func (s *DB) insertSystem(ctx context.Context, tx *sql.Tx, chatID, userID int64, clientID string, at time.Time, ev chat.SystemEvent, seal chat.Sealer) (chat.Inserted, error) {
	plaintext, err := json.Marshal(ev)
	if err != nil {
		return chat.Inserted{}, fmt.Errorf("encode system event: %w", err)
	}
	m := chat.NewMessage{ChatID: chatID, UserID: userID, Kind: chat.MessageSystem, ClientID: clientID, CreatedAt: at}
	seal(&m, plaintext)
	// The caller holds the chat's lock (lockGroup, or the chat is new).
	last, err := s.lockChats(ctx, tx, []int64{chatID})
	if err != nil {
		return chat.Inserted{}, err
	}
	res, err := tx.ExecContext(ctx, messageInsert, m.ChatID, m.UserID, m.Kind, m.KeyVersion, m.Body, m.ClientID, ms(m.CreatedAt), nil, nil)
	if isUnique(err) {
		return chat.Inserted{}, errClientIDUsed
	}
	if err != nil {
		return chat.Inserted{}, fmt.Errorf("insert system message: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return chat.Inserted{}, fmt.Errorf("read system message id: %w", err)
	}
	return chat.Inserted{ID: id, ChatID: chatID, Created: true, CreatedAt: at, Prev: last[chatID]}, nil
}

// record appends one written system message to a change.
func record(change *chat.ChatChange, ins chat.Inserted, ev chat.SystemEvent) {
	change.Messages = append(change.Messages, ins)
	change.System = append(change.System, ev)
}

const chatInsert = `INSERT INTO chats (name, kind, title, e2ee, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`

// CreateChat inserts a direct chat or a group with its members, in one
// transaction. A direct chat is named after its two members, so two users
// starting it at the same moment end up with the one chat: the second
// insert finds the name taken and the existing chat is returned with
// created false. A group gets a random name, its creator as owner, and a
// "created" system message.
func (s *DB) CreateChat(ctx context.Context, c *chat.Chat, memberIDs []int64, seal chat.Sealer, clientID string) (bool, chat.ChatChange, error) {
	ids := distinct(memberIDs)
	switch c.Kind {
	case chat.KindDirect:
		if len(memberIDs) != 2 || len(ids) != 2 {
			return false, chat.ChatChange{}, s.fail("create chat", chat.Errorf(chat.EInvalid, "A direct chat is between two different users."))
		}
	case chat.KindGroup:
		if len(ids) == 0 {
			return false, chat.ChatChange{}, s.fail("create chat", chat.Errorf(chat.EInvalid, "A group needs at least its creator as a member."))
		}
		// The domain's rule, checked here too so that no caller can store a
		// title that SQLite would keep and MySQL's VARCHAR(255) refuse.
		title, err := chat.CheckTitle(c.Title)
		if err != nil {
			return false, chat.ChatChange{}, s.fail("create chat", err)
		}
		c.Title = title
	default:
		return false, chat.ChatChange{}, s.fail("create chat", chat.Errorf(chat.EInvalid, "A new chat is a direct chat or a group, not %q.", chat.Clip(c.Kind, 20)))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, chat.ChatChange{}, s.fail("create chat: begin", err)
	}
	defer s.cache.forget(ids) // after the transaction ends, committed or not
	defer tx.Rollback()
	names, err := usernames(ctx, tx, ids)
	if err != nil {
		return false, chat.ChatChange{}, s.fail("create chat", err)
	}
	creator := ids[0]
	var (
		id   int64
		name string
	)
	if c.Kind == chat.KindDirect {
		name = chat.DirectChatName(ids[0], ids[1])
		insert := chatInsert + ` ON CONFLICT (name) DO NOTHING`
		if s.dialect == MySQL {
			// Setting a column to itself changes nothing: 0 rows affected.
			insert = chatInsert + ` ON DUPLICATE KEY UPDATE id = id`
		}
		res, err := tx.ExecContext(ctx, insert, name, c.Kind, c.Title, c.E2EE, creator, ms(c.CreatedAt))
		if err != nil {
			return false, chat.ChatChange{}, s.fail("create chat: insert direct chat", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return false, chat.ChatChange{}, s.fail("create chat: insert direct chat", err)
		} else if n != 1 {
			// Read the existing chat outside this transaction: on MySQL its
			// snapshot can predate the commit of the creator who was first.
			tx.Rollback()
			existing, err := s.ChatByName(ctx, name)
			if err != nil {
				return false, chat.ChatChange{}, err // named by ChatByName
			}
			*c = existing
			return false, chat.ChatChange{}, nil
		}
		if id, err = res.LastInsertId(); err != nil {
			return false, chat.ChatChange{}, s.fail("create chat: read new chat's id", err)
		}
	} else {
		// 64 random bits make a clash all but impossible; should one happen,
		// another draw costs nothing.
		for attempt := 1; ; attempt++ {
			name = randomGroupName()
			res, err := tx.ExecContext(ctx, chatInsert, name, c.Kind, c.Title, c.E2EE, creator, ms(c.CreatedAt))
			if isUnique(err) && attempt < 3 {
				continue
			}
			if err != nil {
				return false, chat.ChatChange{}, s.fail("create chat: insert group", err)
			}
			if id, err = res.LastInsertId(); err != nil {
				return false, chat.ChatChange{}, s.fail("create chat: read new chat's id", err)
			}
			break
		}
	}

	if c.E2EE {
		if _, err := tx.ExecContext(ctx, `INSERT INTO e2ee_chats (chat_id) VALUES (?)`, id); err != nil {
			return false, chat.ChatChange{}, s.fail("create chat: insert epoch state", err)
		}
	}
	joined := time.UnixMilli(ms(c.CreatedAt)).UTC()
	change := chat.ChatChange{Added: make([]chat.Member, len(ids))}
	for i, uid := range ids {
		role := chat.MemberMember
		if c.Kind == chat.KindGroup && uid == creator {
			role = chat.MemberOwner
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO chat_members (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)`,
			id, uid, role, ms(joined)); err != nil {
			return false, chat.ChatChange{}, s.fail("create chat: insert member", err)
		}
		change.Added[i] = chat.Member{UserID: uid, Username: names[uid], Role: role, JoinedAt: joined}
	}
	if c.Kind == chat.KindGroup {
		var others []string
		for _, uid := range ids[1:] {
			others = append(others, names[uid])
		}
		ev := chat.SystemEvent{Event: chat.EventCreated, Actor: names[creator], Users: others, Title: c.Title}
		ins, err := s.insertSystem(ctx, tx, id, creator, clientID, c.CreatedAt, ev, seal)
		if err != nil {
			return false, chat.ChatChange{}, s.fail("create chat", err)
		}
		record(&change, ins, ev)
	}
	if err := tx.Commit(); err != nil {
		return false, chat.ChatChange{}, s.fail("create chat: commit", err)
	}
	c.ID, c.Name, c.CreatedBy = id, name, creator
	return true, change, nil
}

// lockGroup reads a group inside tx and, on MySQL, locks its row until the
// transaction ends, so that changes to one group's members run one after
// another: two members leaving together must not both see the other stay
// and hand the ownership to a member who is gone. SQLite needs no lock, as
// its writing transactions already run one at a time. A chat that is not a
// group is EInvalid with the sentence notGroup.
func (s *DB) lockGroup(ctx context.Context, tx *sql.Tx, chatID int64, notGroup string) (chat.Chat, error) {
	c, err := scanChat(tx.QueryRowContext(ctx, `SELECT `+chatColumns+` FROM chats WHERE id = ?`+s.forUpdate(), chatID))
	if err != nil {
		return chat.Chat{}, fmt.Errorf("lock group: %w", err)
	}
	if c.Kind != chat.KindGroup {
		return chat.Chat{}, chat.Errorf(chat.EInvalid, "%s", notGroup)
	}
	return c, nil
}

// AddMembers adds users to a group, skipping those already in it, and
// writes one "added" system message when anyone was added.
func (s *DB) AddMembers(ctx context.Context, chatID, actorID int64, userIDs []int64, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.ChatChange{}, s.fail("add members: begin", err)
	}
	ids := distinct(userIDs)
	defer s.cache.forget(ids) // after the transaction ends, committed or not
	defer tx.Rollback()
	if _, err := s.lockGroup(ctx, tx, chatID, "Members can be added only to groups."); err != nil {
		return chat.ChatChange{}, s.fail("add members", err)
	}
	names, err := usernames(ctx, tx, append([]int64{actorID}, ids...))
	if err != nil {
		return chat.ChatChange{}, s.fail("add members", err)
	}
	// A new member has read the history up to now: joining an active group
	// shows its past, not a thousand unread messages.
	insert := `INSERT INTO chat_members (chat_id, user_id, role, joined_at, last_read_id) VALUES (?, ?, ?, ?, ` + newestID + `)
		ON CONFLICT (chat_id, user_id) DO NOTHING`
	if s.dialect == MySQL {
		insert = `INSERT INTO chat_members (chat_id, user_id, role, joined_at, last_read_id) VALUES (?, ?, ?, ?, ` + newestID + `)
			ON DUPLICATE KEY UPDATE user_id = user_id`
	}
	joined := time.UnixMilli(ms(at)).UTC()
	var (
		change chat.ChatChange
		added  []string
	)
	for _, uid := range ids {
		res, err := tx.ExecContext(ctx, insert, chatID, uid, chat.MemberMember, ms(joined), chatID)
		if err != nil {
			return chat.ChatChange{}, s.fail("add members: insert member", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return chat.ChatChange{}, s.fail("add members: insert member", err)
		} else if n != 1 {
			continue // already a member
		}
		change.Added = append(change.Added, chat.Member{UserID: uid, Username: names[uid], Role: chat.MemberMember, JoinedAt: joined})
		added = append(added, names[uid])
	}
	if len(change.Added) == 0 {
		return chat.ChatChange{}, nil
	}
	if err := markChatChanged(ctx, tx, chatID); err != nil {
		return chat.ChatChange{}, s.fail("add members", err)
	}
	ev := chat.SystemEvent{Event: chat.EventAdded, Actor: names[actorID], Users: added}
	ins, err := s.insertSystem(ctx, tx, chatID, actorID, clientID, at, ev, seal)
	if err != nil {
		return chat.ChatChange{}, s.fail("add members", err)
	}
	record(&change, ins, ev)
	if err := tx.Commit(); err != nil {
		return chat.ChatChange{}, s.fail("add members: commit", err)
	}
	return change, nil
}

// RemoveMember takes a user out of a group and writes a "left" or
// "removed" system message. When the owner goes and no owner remains, the
// longest-standing member (earliest joined_at, then smallest user id)
// becomes owner and an "owner" system message follows, with client id
// clientID+":owner". Whether the actor may do this is the caller's check.
func (s *DB) RemoveMember(ctx context.Context, chatID, actorID, userID int64, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.ChatChange{}, s.fail("remove member: begin", err)
	}
	defer s.cache.forget([]int64{userID}) // after the transaction ends, committed or not
	defer tx.Rollback()
	if _, err := s.lockGroup(ctx, tx, chatID, "Members can be removed only from groups."); err != nil {
		return chat.ChatChange{}, s.fail("remove member", err)
	}
	var role string
	err = tx.QueryRowContext(ctx, `SELECT role FROM chat_members WHERE chat_id = ? AND user_id = ?`+s.forUpdate(), chatID, userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return chat.ChatChange{}, s.fail("remove member", chat.Errorf(chat.ENotFound, "That user is not a member of this group."))
	}
	if err != nil {
		return chat.ChatChange{}, s.fail("remove member: read membership", err)
	}
	names, err := usernames(ctx, tx, distinct([]int64{actorID, userID}))
	if err != nil {
		return chat.ChatChange{}, s.fail("remove member", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM chat_members WHERE chat_id = ? AND user_id = ?`, chatID, userID); err != nil {
		return chat.ChatChange{}, s.fail("remove member: delete membership", err)
	}
	if err := markChatChanged(ctx, tx, chatID); err != nil {
		return chat.ChatChange{}, s.fail("remove member", err)
	}
	ev := chat.SystemEvent{Event: chat.EventLeft, Actor: names[userID]}
	if actorID != userID {
		ev = chat.SystemEvent{Event: chat.EventRemoved, Actor: names[actorID], Users: []string{names[userID]}}
	}
	change := chat.ChatChange{Removed: userID}
	ins, err := s.insertSystem(ctx, tx, chatID, actorID, clientID, at, ev, seal)
	if err != nil {
		return chat.ChatChange{}, s.fail("remove member", err)
	}
	record(&change, ins, ev)

	if role == chat.MemberOwner {
		var owners int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM chat_members WHERE chat_id = ? AND role = ?`, chatID, chat.MemberOwner).
			Scan(&owners); err != nil {
			return chat.ChatChange{}, s.fail("remove member: count owners", err)
		}
		var (
			next     int64
			nextName string
		)
		err := tx.QueryRowContext(ctx, `SELECT cm.user_id, `+shownName+` FROM chat_members cm JOIN users u ON u.id = cm.user_id
			WHERE cm.chat_id = ? ORDER BY cm.joined_at, cm.user_id LIMIT 1`, chatID).Scan(&next, &nextName)
		switch {
		case owners > 0 || errors.Is(err, sql.ErrNoRows):
			// Another owner remains, or nobody does: nothing to hand over.
		case err != nil:
			return chat.ChatChange{}, s.fail("remove member: find next owner", err)
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE chat_members SET role = ? WHERE chat_id = ? AND user_id = ?`,
				chat.MemberOwner, chatID, next); err != nil {
				return chat.ChatChange{}, s.fail("remove member: hand over ownership", err)
			}
			ev := chat.SystemEvent{Event: chat.EventOwner, Actor: names[userID], Users: []string{nextName}}
			ins, err := s.insertSystem(ctx, tx, chatID, actorID, clientID+":owner", at, ev, seal)
			if err != nil {
				return chat.ChatChange{}, s.fail("remove member: hand over ownership", err)
			}
			record(&change, ins, ev)
			change.NewOwnerID = next
		}
	}
	if err := tx.Commit(); err != nil {
		return chat.ChatChange{}, s.fail("remove member: commit", err)
	}
	return change, nil
}

// RenameChat sets a group's title and writes a "renamed" system message.
func (s *DB) RenameChat(ctx context.Context, chatID, actorID int64, title string, at time.Time, seal chat.Sealer, clientID string) (chat.ChatChange, error) {
	title, err := chat.CheckTitle(title)
	if err != nil {
		return chat.ChatChange{}, s.fail("rename chat", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.ChatChange{}, s.fail("rename chat: begin", err)
	}
	defer s.cache.forget(nil, chatID) // after the transaction ends, committed or not
	defer tx.Rollback()
	if _, err := s.lockGroup(ctx, tx, chatID, "Only groups can be renamed."); err != nil {
		return chat.ChatChange{}, s.fail("rename chat", err)
	}
	names, err := usernames(ctx, tx, []int64{actorID})
	if err != nil {
		return chat.ChatChange{}, s.fail("rename chat", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE chats SET title = ? WHERE id = ?`, title, chatID); err != nil {
		return chat.ChatChange{}, s.fail("rename chat: update title", err)
	}
	ev := chat.SystemEvent{Event: chat.EventRenamed, Actor: names[actorID], Title: title}
	ins, err := s.insertSystem(ctx, tx, chatID, actorID, clientID, at, ev, seal)
	if err != nil {
		return chat.ChatChange{}, s.fail("rename chat", err)
	}
	var change chat.ChatChange
	record(&change, ins, ev)
	if err := tx.Commit(); err != nil {
		return chat.ChatChange{}, s.fail("rename chat: commit", err)
	}
	return change, nil
}

const memberSelect = `SELECT cm.chat_id, cm.user_id, ` + shownName + `, cm.role, cm.joined_at, cm.last_read_id
	FROM chat_members cm JOIN users u ON u.id = cm.user_id `

// scanMembers reads memberSelect rows, grouped by chat id.
func scanMembers(rows *sql.Rows) (map[int64][]chat.Member, error) {
	defer rows.Close()
	out := map[int64][]chat.Member{}
	for rows.Next() {
		var (
			chatID int64
			m      chat.Member
			joined int64
		)
		if err := rows.Scan(&chatID, &m.UserID, &m.Username, &m.Role, &joined, &m.LastReadID); err != nil {
			return nil, err
		}
		m.JoinedAt = time.UnixMilli(joined).UTC()
		out[chatID] = append(out[chatID], m)
	}
	return out, rows.Err()
}

// Members returns a chat's members by joined_at, then user id; none for a
// chat that does not exist.
func (s *DB) Members(ctx context.Context, chatID int64) ([]chat.Member, error) {
	rows, err := s.query(ctx, memberSelect+`WHERE cm.chat_id = ? ORDER BY cm.joined_at, cm.user_id`, chatID)
	if err != nil {
		return nil, s.fail("members", err)
	}
	byChat, err := scanMembers(rows)
	return byChat[chatID], s.fail("members", err)
}

// UserChats returns the chats a user belongs to, most recent activity first:
// the time of the last message, or of the chat's creation when it has none.
func (s *DB) UserChats(ctx context.Context, userID int64) ([]chat.ChatSummary, error) {
	sums, err := s.userChats(ctx, userID, 0)
	return sums, s.fail("user chats", err)
}

// UserChat returns one chat as the user sees it; ENotFound when the user is
// not a member or the chat does not exist, the same answer for both so that
// a non-member learns nothing about it.
func (s *DB) UserChat(ctx context.Context, userID, chatID int64) (chat.ChatSummary, error) {
	if chatID <= 0 {
		return chat.ChatSummary{}, s.fail("user chat", chat.Errorf(chat.ENotFound, "No such chat."))
	}
	sums, err := s.userChats(ctx, userID, chatID)
	if err != nil {
		return chat.ChatSummary{}, s.fail("user chat", err)
	}
	if len(sums) == 0 {
		return chat.ChatSummary{}, s.fail("user chat", chat.Errorf(chat.ENotFound, "No such chat."))
	}
	return sums[0], nil
}

// unreadBatch is how many chats one unread-count query covers.
const unreadBatch = 100

// userChats builds the summaries of the user's chats, or of the one chat
// chatID (when not 0), in three queries whatever the number of chats: the
// chats with the viewer's membership and last message, their members, and
// their unread counts. They run in one read-only transaction so that the
// three agree.
func (s *DB) userChats(ctx context.Context, userID, chatID int64) ([]chat.ChatSummary, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	only, args := "", []any{userID}
	if chatID != 0 {
		only, args = ` AND cm.chat_id = ?`, append(args, chatID)
	}
	// The newest message by ORDER BY ... LIMIT 1 rather than MAX(id): with
	// the kind condition MAX would read every row of the chat, while the
	// (chat_id, id) index read backwards stops at the first message.
	rows, err := tx.QueryContext(ctx, `SELECT c.id, c.name, c.kind, c.title, c.e2ee, c.created_by, c.created_at,
			x.role, x.last_read_id, x.notify, x.last_id, lm.created_at,
			ec.current_epoch, ec.min_epoch, ec.changed, ee.started_at, ee.messages
		FROM (SELECT cm.chat_id, cm.role, cm.last_read_id, cm.notify,
				(SELECT m.id FROM messages m WHERE m.chat_id = cm.chat_id AND `+isMessage+` ORDER BY m.id DESC LIMIT 1) AS last_id
			FROM chat_members cm WHERE cm.user_id = ?`+only+`) x
		JOIN chats c ON c.id = x.chat_id
		LEFT JOIN messages lm ON lm.id = x.last_id
		LEFT JOIN e2ee_chats ec ON ec.chat_id = c.id
		LEFT JOIN e2ee_epochs ee ON ee.chat_id = ec.chat_id AND ee.epoch = ec.current_epoch`, args...)
	if err != nil {
		return nil, fmt.Errorf("read chats: %w", err)
	}
	var sums []chat.ChatSummary
	for rows.Next() {
		var (
			sum                               chat.ChatSummary
			by, lastID, atMS                  sql.NullInt64
			created                           int64
			epoch, least, started, epochCount sql.NullInt64
			changed                           sql.NullBool
		)
		if err := rows.Scan(&sum.ID, &sum.Name, &sum.Kind, &sum.Title, &sum.E2EE, &by, &created,
			&sum.Role, &sum.LastReadID, &sum.Notify, &lastID, &atMS, &epoch, &least, &changed, &started, &epochCount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read chats: %w", err)
		}
		sum.CreatedBy = by.Int64
		sum.CreatedAt = time.UnixMilli(created).UTC()
		sum.LastMessageID = lastID.Int64
		sum.LastMessageAt = fromMS(atMS)
		sum.Epoch = chat.EpochState{Current: epoch.Int64, Min: least.Int64, Changed: changed.Bool, StartedAt: fromMS(started), Messages: epochCount.Int64}
		sums = append(sums, sum)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read chats: %w", err)
	}
	if len(sums) == 0 {
		return nil, nil
	}

	memberArgs := []any{userID}
	memberWhere := `WHERE cm.chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = ?)`
	if chatID != 0 {
		memberWhere, memberArgs = `WHERE cm.chat_id = ?`, []any{chatID}
	}
	// Everyone is in the global chat: listing its members would cost
	// O(users) on every call, so its summary carries none.
	memberWhere += ` AND cm.chat_id NOT IN (SELECT id FROM chats WHERE kind = 'global')`
	rows, err = tx.QueryContext(ctx, memberSelect+memberWhere+` ORDER BY cm.chat_id, cm.joined_at, cm.user_id`, memberArgs...)
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	members, err := scanMembers(rows)
	if err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	for i := range sums {
		sums[i].Members = members[sums[i].ID]
	}

	unread, err := s.unread(ctx, tx, userID, sums)
	if err != nil {
		return nil, fmt.Errorf("count unread: %w", err)
	}
	for i := range sums {
		sums[i].Unread = unread[sums[i].ID]
	}

	slices.SortStableFunc(sums, func(a, b chat.ChatSummary) int {
		if c := activity(b).Compare(activity(a)); c != 0 {
			return c
		}
		if a.LastMessageID != b.LastMessageID {
			return cmpDesc(a.LastMessageID, b.LastMessageID)
		}
		return cmpDesc(a.ID, b.ID)
	})
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return sums, nil
}

// activity is when a chat last changed as its list shows it.
func activity(sum chat.ChatSummary) time.Time {
	if sum.LastMessageID != 0 {
		return sum.LastMessageAt
	}
	return sum.CreatedAt
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// unread counts, per chat, the messages after the viewer's last read one
// that others sent and did not delete, up to chat.UnreadCap: each count runs
// over a subquery limited to the cap, so a long backlog costs at most
// UnreadCap index entries. One UNION ALL covers many chats; a chat whose
// last message the viewer has read needs no count at all.
func (s *DB) unread(ctx context.Context, q querier, viewer int64, sums []chat.ChatSummary) (map[int64]int, error) {
	var pending []chat.ChatSummary
	for _, sum := range sums {
		if sum.LastMessageID > sum.LastReadID {
			pending = append(pending, sum)
		}
	}
	out := make(map[int64]int, len(pending))
	for start := 0; start < len(pending); start += unreadBatch {
		batch := pending[start:min(start+unreadBatch, len(pending))]
		var (
			query []byte
			args  []any
		)
		for i, sum := range batch {
			if i > 0 {
				query = append(query, "\nUNION ALL "...)
			}
			// The chat id is an int64 from the database, written out rather
			// than bound so that both drivers return it as an integer.
			n := strconv.Itoa(i)
			query = append(query, `SELECT `+strconv.FormatInt(sum.ID, 10)+`, COUNT(*) FROM (SELECT 1 AS one FROM messages
				WHERE chat_id = ? AND id > ? AND kind IN ('text', 'file') AND deleted_at IS NULL AND user_id <> ?
				LIMIT `+strconv.Itoa(chat.UnreadCap)+`) u`+n...)
			args = append(args, sum.ID, sum.LastReadID, viewer)
		}
		rows, err := q.QueryContext(ctx, string(query), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				id int64
				n  int
			)
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MarkRead moves the user's last_read_id forward to messageID, never back
// and never past the chat's newest row, and returns the stored value.
// Reading the newest id first, rather than in a subquery of the UPDATE,
// keeps MySQL from locking the end of the chat's messages against new ones
// until this transaction ends.
func (s *DB) MarkRead(ctx context.Context, chatID, userID, messageID int64) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.fail("mark read: begin", err)
	}
	defer tx.Rollback()
	var newest int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM messages WHERE chat_id = ?`, chatID).Scan(&newest); err != nil {
		return 0, s.fail("mark read: read newest message id", err)
	}
	upTo := min(messageID, newest)
	if _, err := tx.ExecContext(ctx, `UPDATE chat_members SET last_read_id = ? WHERE chat_id = ? AND user_id = ? AND last_read_id < ?`,
		upTo, chatID, userID, upTo); err != nil {
		return 0, s.fail("mark read: update read marker", err)
	}
	// A locking read sees what another MarkRead committed meanwhile too.
	var last int64
	err = tx.QueryRowContext(ctx, `SELECT last_read_id FROM chat_members WHERE chat_id = ? AND user_id = ?`+s.forUpdate(), chatID, userID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, s.fail("mark read", chat.Errorf(chat.ENotFound, "You are not a member of this chat."))
	}
	if err != nil {
		return 0, s.fail("mark read: read read marker", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.fail("mark read: commit", err)
	}
	return last, nil
}

// newestID is the id of a chat's newest row (any kind), 0 for none; its one
// parameter is the chat id.
const newestID = `COALESCE((SELECT m.id FROM messages m WHERE m.chat_id = ? ORDER BY m.id DESC LIMIT 1), 0)`
