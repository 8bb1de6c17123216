package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// KeyVersions returns every stored key version, oldest first.
func (s *DB) KeyVersions(ctx context.Context) ([]chat.KeyVersion, error) {
	rows, err := s.query(ctx, `SELECT id, wrapped_key, created_at FROM key_versions ORDER BY id`)
	if err != nil {
		return nil, s.fail("key versions", err)
	}
	defer rows.Close()
	var out []chat.KeyVersion
	for rows.Next() {
		var kv chat.KeyVersion
		var created int64
		if err := rows.Scan(&kv.ID, &kv.WrappedKey, &created); err != nil {
			return nil, s.fail("key versions: read key version", err)
		}
		kv.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, kv)
	}
	return out, s.fail("key versions", rows.Err())
}

// InsertKeyVersion stores a wrapped key and returns its id.
func (s *DB) InsertKeyVersion(ctx context.Context, wrapped []byte, at time.Time) (int64, error) {
	res, err := s.exec(ctx, `INSERT INTO key_versions (wrapped_key, created_at) VALUES (?, ?)`, wrapped, ms(at))
	if err != nil {
		return 0, s.fail("insert key version", err)
	}
	id, err := res.LastInsertId()
	return id, s.fail("insert key version: read its id", err)
}

// ReplaceWrappedKeys rewrites the wrapped keys of existing versions in one
// transaction; a version that does not exist fails the whole change.
func (s *DB) ReplaceWrappedKeys(ctx context.Context, versions []chat.KeyVersion) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("replace wrapped keys: begin", err)
	}
	defer tx.Rollback()
	for _, kv := range versions {
		res, err := tx.ExecContext(ctx, `UPDATE key_versions SET wrapped_key = ? WHERE id = ?`, kv.WrappedKey, kv.ID)
		if err != nil {
			return s.fail("replace wrapped keys: update key version", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			ok, err := exists(ctx, tx, "key_versions", kv.ID)
			if err != nil {
				return s.fail("replace wrapped keys: find key version", err)
			}
			if !ok {
				return s.fail("replace wrapped keys", fmt.Errorf("key version %d does not exist", kv.ID))
			}
		}
	}
	return s.fail("replace wrapped keys: commit", tx.Commit())
}

const chatColumns = `id, name, kind, title, e2ee, created_by, created_at`

func scanChat(row interface{ Scan(...any) error }) (chat.Chat, error) {
	var (
		c       chat.Chat
		by      sql.NullInt64
		created int64
	)
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &c.Title, &c.E2EE, &by, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return chat.Chat{}, chat.Errorf(chat.ENotFound, "No such chat.")
		}
		return chat.Chat{}, err
	}
	c.CreatedBy = by.Int64
	c.CreatedAt = time.UnixMilli(created).UTC()
	return c, nil
}

// ChatByName finds a chat by name (through the chat cache, see cache.go).
func (s *DB) ChatByName(ctx context.Context, name string) (chat.Chat, error) {
	c, err := s.cachedChat(func() (chat.Chat, bool, uint64) { return s.cache.chatNamed(name) }, func() (chat.Chat, error) {
		return scanChat(s.queryRow(ctx, `SELECT `+chatColumns+` FROM chats WHERE name = ?`, name))
	})
	return c, s.fail("chat by name", err)
}

// ChatByID finds a chat by id (through the chat cache).
func (s *DB) ChatByID(ctx context.Context, id int64) (chat.Chat, error) {
	c, err := s.cachedChat(func() (chat.Chat, bool, uint64) { return s.cache.chat(id) }, func() (chat.Chat, error) {
		return scanChat(s.queryRow(ctx, `SELECT `+chatColumns+` FROM chats WHERE id = ?`, id))
	})
	return c, s.fail("chat by id", err)
}

// IsMember reports whether the user belongs to the chat (through the chat
// cache).
func (s *DB) IsMember(ctx context.Context, chatID, userID int64) (bool, error) {
	ids, err := s.chatIDs(ctx, userID)
	if err != nil {
		return false, s.fail("is member", err)
	}
	_, ok := slices.BinarySearch(ids, chatID)
	return ok, nil
}

// UserChatIDs returns the ids of the chats the user belongs to, ascending
// (through the chat cache).
func (s *DB) UserChatIDs(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := s.chatIDs(ctx, userID)
	return slices.Clone(ids), s.fail("user chat ids", err)
}

// messageInsert inserts one row of messages; reply_to and target_id are NULL
// when unused.
const messageInsert = `INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at, reply_to, target_id)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// nullID stores an optional reference: 0 means none and becomes NULL.
func nullID(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}

// InsertMessages commits a group of messages in one transaction, in order.
// A (user, client id) pair already stored, before or earlier in the same
// group, returns the stored id with Created false.
//
// The usual group, all new, is one multi-row INSERT (a single message
// too: one statement fewer inside the chat's lock than a prepared one); a
// group holding a duplicate is rolled back and done a row at a time.
func (s *DB) InsertMessages(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error) {
	if len(msgs) > 0 {
		out, err := s.insertAll(ctx, msgs)
		if err != nil || out != nil {
			return out, s.fail("insert messages", err)
		}
	}
	out, err := s.insertEach(ctx, msgs)
	return out, s.fail("insert messages", err)
}

// lockChats locks the rows of the chats a transaction is about to add
// messages to, in id order, until it ends, and returns the id of each
// chat's last message. On MySQL several nodes commit at once; the lock
// makes each chat's rows commit one transaction after another, so that a
// row of a chat is visible only once every earlier row of that chat is: a
// sync never skips a row that commits later with a smaller id, and each
// row's Prev is the row before it. It must come before any plain read in
// the transaction: InnoDB takes a transaction's snapshot at its first plain
// read, and the snapshot must include the commits the lock waited for.
// SQLite commits one transaction at a time and needs no lock.
func (s *DB) lockChats(ctx context.Context, tx *sql.Tx, chatIDs []int64) (map[int64]int64, error) {
	ids := distinct(chatIDs)
	if len(ids) == 0 {
		return map[int64]int64{}, nil
	}
	args := appendIDs(nil, ids)
	if s.dialect == MySQL {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM chats WHERE id IN (`+placeholders(len(ids))+`) ORDER BY id FOR UPDATE`, args...)
		if err != nil {
			return nil, fmt.Errorf("lock chats: %w", err)
		}
		rows.Close()
	}
	last := make(map[int64]int64, len(ids))
	for _, id := range ids {
		var prev sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM messages WHERE chat_id = ?`, id).Scan(&prev); err != nil {
			return nil, fmt.Errorf("read last message: %w", err)
		}
		last[id] = prev.Int64
	}
	return last, nil
}

// errNotMember answers a message whose sender left or was removed from its
// chat before it committed.
var errNotMember = chat.Errorf(chat.EForbidden, "No such chat, or you are not a member of it.")

// checkSenders fails when a sender is not a member of the chat they write
// to, read under the chats' locks, which every membership change takes
// too. Callers check membership before (through the chat cache), but a
// removal can commit in between, on another node whose news has not
// arrived yet: the database has the last word, so a member removed cannot
// send once the removal has committed, whatever any node cached.
func (s *DB) checkSenders(ctx context.Context, tx *sql.Tx, msgs []chat.NewMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	type pair struct{ chatID, userID int64 }
	want := make(map[pair]bool, len(msgs))
	for _, m := range msgs {
		want[pair{m.ChatID, m.UserID}] = false
	}
	query, args := sendersQuery(msgs)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("check senders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.chatID, &p.userID); err != nil {
			return fmt.Errorf("check senders: %w", err)
		}
		if _, ok := want[p]; ok {
			want[p] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check senders: %w", err)
	}
	for _, member := range want {
		if !member {
			return errNotMember
		}
	}
	return nil
}

// sendersQuery is the statement that lists which of the messages' senders
// are members of which of their chats, with its arguments.
func sendersQuery(msgs []chat.NewMessage) (string, []any) {
	chatIDs := distinct(chatIDsOf(msgs))
	userIDs := make([]int64, len(msgs))
	for i, m := range msgs {
		userIDs[i] = m.UserID
	}
	userIDs = distinct(userIDs)
	args := appendIDs(appendIDs(make([]any, 0, len(chatIDs)+len(userIDs)), chatIDs), userIDs)
	return `SELECT chat_id, user_id FROM chat_members WHERE chat_id IN (` + placeholders(len(chatIDs)) +
		`) AND user_id IN (` + placeholders(len(userIDs)) + `)`, args
}

// maxInsertRows is the most rows one INSERT statement carries: 9 or 10
// bind variables a row stay well inside both databases' limits.
const maxInsertRows = 256

// insertAll inserts every message of a group with one statement per
// maxInsertRows rows. It returns nil, nil when any row was a duplicate,
// or (in insertBatched) a sender was no longer a member: nothing is
// committed then, and the caller takes the general path, which tells.
func (s *DB) insertAll(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error) {
	if s.groups != nil && len(msgs) <= maxInsertRows && batchBytes(msgs) <= maxBatchBytes {
		return s.insertBatched(ctx, msgs)
	}
	tx, done, err := s.beginGroup(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer done()
	defer tx.Rollback()
	last, err := s.lockChats(ctx, tx, chatIDsOf(msgs))
	if err != nil {
		return nil, err
	}
	if err := s.checkSenders(ctx, tx, msgs); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(msgs))
	for chunk := range slices.Chunk(msgs, maxInsertRows) {
		chunkIDs, err := s.insertChunk(ctx, tx, chunk)
		if err != nil || chunkIDs == nil {
			return nil, err
		}
		ids = append(ids, chunkIDs...)
	}
	return s.commitNew(ctx, tx, msgs, ids, last)
}

// commitNew ends a group whose rows are all new: ids are theirs in row
// order, and last holds each chat's newest id before the group (each row's
// Prev). The messages of encrypted chats may use their epochs, and count
// on them.
func (s *DB) commitNew(ctx context.Context, tx *sql.Tx, msgs []chat.NewMessage, ids []int64, last map[int64]int64) ([]chat.Inserted, error) {
	out := inserted(msgs, ids, last)
	for _, m := range msgs {
		if m.Use != nil {
			if err := s.useEpoch(ctx, tx, *m.Use); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	s.restartLog(ctx)
	return out, nil
}

// inserted is the result of a group whose rows are all new: ids are theirs
// in row order, and last holds each chat's newest id before the group
// (each row's Prev); it is updated to the group's.
func inserted(msgs []chat.NewMessage, ids []int64, last map[int64]int64) []chat.Inserted {
	out := make([]chat.Inserted, len(msgs))
	for i, m := range msgs {
		out[i] = chat.Inserted{ID: ids[i], ChatID: m.ChatID, Created: true, CreatedAt: m.CreatedAt, Prev: last[m.ChatID]}
		last[m.ChatID] = ids[i]
	}
	return out
}

// maxBatchBytes bounds the bodies of a batched group: escaped into the
// request they stay well inside MySQL's smallest max_allowed_packet
// (4 MiB on MySQL 5.7, 16 MiB on MariaDB, 64 MiB on MySQL 8). A larger
// group takes a statement at a time, whose arguments the driver sends as
// prepared ones when too long.
const maxBatchBytes = 1 << 20

func batchBytes(msgs []chat.NewMessage) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Body) + len(m.ClientID)
	}
	return n
}

// insertBatched is insertAll on MySQL as one request, on a connection of
// s.groups: START TRANSACTION, the lock on the chats' rows, their last ids,
// the INSERT (and, unless its ids are consecutive, a read of them), and
// COMMIT. The chats' rows stay locked only while the server runs those
// statements, never across a round trip to this node, which on a busy
// machine can wait for a core: the nodes take turns on a chat's lock, so
// its hold bounds what one chat can commit over all of them. The
// statements run in order, so the reads after the lock see every commit it
// waited for, as lockChats requires.
//
// Each row's user_id is read from the sender's row of chat_members, under
// the lock (which every membership change takes too): for a sender who is
// no longer a member it is NULL, which the column refuses (error 1048,
// strict mode), as the unique key refuses a client id already stored
// (1062). Either error stops the request before its COMMIT; the group is
// rolled back and nil, nil returned, as insertAll does, and the general
// path says which it was.
//
// A group whose messages use their encrypted chats' epochs reads, in the
// same request and instead of its COMMIT, those chats' epoch states (locked,
// as useEpoch does) and the devices named (readEpochs); checks each use in
// order here, counting the uses before it; and sends the counts and the
// COMMIT as a second request (epochReads.count). The lock is held over that one round trip,
// not over four a message.
func (s *DB) insertBatched(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error) {
	conn, err := s.groups.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	open := true // a transaction may be open on conn
	defer func() {
		if open {
			// A pooled connection must not keep a transaction, nor the
			// chats' locks: one that cannot roll back is closed instead.
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); err != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		conn.Close()
	}()
	var uses []chat.MessageUse
	for _, m := range msgs {
		if m.Use != nil {
			uses = append(uses, *m.Use)
		}
	}
	chatIDs := distinct(chatIDsOf(msgs))
	var q strings.Builder
	args := make([]any, 0, 2*len(chatIDs)+11*len(msgs))
	q.WriteString(`START TRANSACTION;SELECT id FROM chats WHERE id IN (` + placeholders(len(chatIDs)) + `) ORDER BY id FOR UPDATE;`)
	q.WriteString(`SELECT chat_id, MAX(id) FROM messages WHERE chat_id IN (` + placeholders(len(chatIDs)) + `) GROUP BY chat_id;`)
	args = appendIDs(appendIDs(args, chatIDs), chatIDs)
	q.WriteString(`INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at, reply_to, target_id) VALUES `)
	for i, m := range msgs {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?, (SELECT user_id FROM chat_members WHERE chat_id = ? AND user_id = ?), ?, ?, ?, ?, ?, ?, NULL)`)
		args = append(args, m.ChatID, m.ChatID, m.UserID, m.Kind, m.KeyVersion, m.Body, m.ClientID, ms(m.CreatedAt), nullID(m.ReplyTo))
	}

	// The result sets in order, each read by its function: the locked
	// chats, their last ids, the first id or the rows inserted, and for
	// epochs used the states and the devices (START TRANSACTION, the
	// INSERT and COMMIT have none).
	last := make(map[int64]int64, len(chatIDs))
	var first int64
	byKey := make(map[insertedKey]int64, len(msgs))
	sets := []func(*sql.Rows) error{
		func(rows *sql.Rows) error { var id int64; return rows.Scan(&id) },
		func(rows *sql.Rows) error {
			var id, newest sql.NullInt64
			err := rows.Scan(&id, &newest)
			last[id.Int64] = newest.Int64
			return err
		},
	}
	if s.consecutiveIDs {
		q.WriteString(`;SELECT LAST_INSERT_ID()`)
		sets = append(sets, func(rows *sql.Rows) error { return rows.Scan(&first) })
	} else {
		idsQ, idsArgs := idsQuery(msgs, `LAST_INSERT_ID()`)
		q.WriteString(`;` + idsQ)
		args = append(args, idsArgs...)
		sets = append(sets, func(rows *sql.Rows) error {
			var id int64
			var key insertedKey
			err := rows.Scan(&id, &key.userID, &key.clientID)
			byKey[key] = id
			return err
		})
	}
	var epochs *epochReads
	if len(uses) == 0 {
		q.WriteString(`;COMMIT`)
	} else {
		var readers []func(*sql.Rows) error
		args, epochs, readers = readEpochs(&q, args, uses)
		sets = append(sets, readers...)
	}

	// failed ends a request that stopped with err: at a row the table
	// refused (see above), the group takes the general path.
	failed := func(err error) ([]chat.Inserted, error) {
		if isUnique(err) || isNullRefused(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("insert group: %w", err)
	}
	rows, err := conn.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return failed(err)
	}
	defer rows.Close()
	// Every set is read to its end, and the request with it: only then
	// has its COMMIT answered.
	for set := 0; ; set++ {
		for rows.Next() {
			if set >= len(sets) {
				return nil, fmt.Errorf("insert group: more than %d result sets", len(sets))
			}
			if err := sets[set](rows); err != nil {
				return nil, fmt.Errorf("insert group: read result %d: %w", set, err)
			}
		}
		if err := rows.Err(); err != nil {
			return failed(err)
		}
		if !rows.NextResultSet() {
			if err := rows.Err(); err != nil {
				return failed(err)
			}
			if set != len(sets)-1 {
				return nil, fmt.Errorf("insert group: %d result sets, want %d", set+1, len(sets))
			}
			break
		}
	}
	if err := rows.Close(); err != nil {
		return failed(err)
	}
	var ids []int64
	if s.consecutiveIDs {
		ids = consecutiveFrom(first, len(msgs))
	} else if ids, err = idsInOrder(msgs, byKey); err != nil {
		return nil, err
	}
	out := inserted(msgs, ids, last)
	if epochs != nil {
		if err := epochs.count(ctx, conn, uses); err != nil {
			return nil, err
		}
	}
	open = false
	return out, nil
}

// epochReads is what a group whose messages use their chats' epochs reads
// in its request, under the chats' locks: the epoch states (locked, as
// useEpoch's epochState reads them, a chat at a time) and the devices the
// uses name.
type epochReads struct {
	states  map[int64]*chat.EpochState
	devices map[DeviceKey]deviceState
}

// readEpochs appends the reads of uses' epochs and devices to a group's
// request (q and its args), and returns the args, and the readers of the
// three result sets, which fill the epochReads.
func readEpochs(q *strings.Builder, args []any, uses []chat.MessageUse) ([]any, *epochReads, []func(*sql.Rows) error) {
	r := &epochReads{states: make(map[int64]*chat.EpochState), devices: make(map[DeviceKey]deviceState)}
	chatIDs := make([]int64, len(uses))
	for i, u := range uses {
		chatIDs[i] = u.ChatID
	}
	chatIDs = distinct(chatIDs)
	q.WriteString(`;SELECT chat_id, current_epoch, min_epoch, changed FROM e2ee_chats WHERE chat_id IN (` + placeholders(len(chatIDs)) + `) FOR UPDATE`)
	q.WriteString(`;SELECT e.chat_id, e.started_at, e.messages FROM e2ee_chats c JOIN e2ee_epochs e ON e.chat_id = c.chat_id AND e.epoch = c.current_epoch WHERE c.chat_id IN (` + placeholders(len(chatIDs)) + `) FOR UPDATE`)
	q.WriteString(`;SELECT user_id, device_id, revoked_at FROM e2ee_devices WHERE `)
	args = appendIDs(appendIDs(args, chatIDs), chatIDs)
	for i, u := range uses {
		if i > 0 {
			q.WriteString(` OR `)
		}
		q.WriteString(`(user_id = ? AND device_id = ?)`)
		args = append(args, u.UserID, u.DeviceID)
	}
	return args, r, []func(*sql.Rows) error{
		func(rows *sql.Rows) error {
			var id int64
			var st chat.EpochState
			err := rows.Scan(&id, &st.Current, &st.Min, &st.Changed)
			r.states[id] = &st
			return err
		},
		func(rows *sql.Rows) error {
			var id int64
			var started, count sql.NullInt64
			if err := rows.Scan(&id, &started, &count); err != nil {
				return err
			}
			if st := r.states[id]; st != nil {
				st.StartedAt, st.Messages = fromMS(started), count.Int64
			}
			return nil
		},
		func(rows *sql.Rows) error {
			var k DeviceKey
			var revoked sql.NullInt64
			err := rows.Scan(&k.UserID, &k.DeviceID, &revoked)
			r.devices[k] = deviceState{found: true, revoked: revoked.Valid}
			return err
		},
	}
}

// count checks a group's uses of epochs in order, each against the state
// its chat would have after the uses before it, and commits their counts
// with the group: one request.
func (r *epochReads) count(ctx context.Context, conn *sql.Conn, uses []chat.MessageUse) error {
	type epochKey struct{ chatID, epoch int64 }
	counts := make(map[epochKey]int64)
	var order []epochKey
	for _, u := range uses {
		st := r.states[u.ChatID]
		if st == nil {
			return chat.Errorf(chat.ENotFound, "This chat is not end-to-end encrypted.")
		}
		if err := checkUse(*st, r.devices[DeviceKey{u.UserID, u.DeviceID}], u); err != nil {
			return err
		}
		if u.Epoch == st.Current {
			st.Messages++
		}
		k := epochKey{u.ChatID, u.Epoch}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	var q strings.Builder
	args := make([]any, 0, 3*len(order))
	for _, k := range order {
		q.WriteString(`UPDATE e2ee_epochs SET messages = messages + ? WHERE chat_id = ? AND epoch = ?;`)
		args = append(args, counts[k], k.chatID, k.epoch)
	}
	q.WriteString(`COMMIT`)
	if _, err := conn.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("count epoch uses and commit: %w", err)
	}
	return nil
}

func chatIDsOf(msgs []chat.NewMessage) []int64 {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ChatID
	}
	return ids
}

// insertChunk runs one multi-row INSERT and returns the new ids in row
// order, or nil when a row was a duplicate (and nothing was inserted).
func (s *DB) insertChunk(ctx context.Context, tx *sql.Tx, msgs []chat.NewMessage) ([]int64, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at, reply_to, target_id) VALUES `)
	args := make([]any, 0, 9*len(msgs))
	for i, m := range msgs {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, NULL)`)
		args = append(args, m.ChatID, m.UserID, m.Kind, m.KeyVersion, m.Body, m.ClientID, ms(m.CreatedAt), nullID(m.ReplyTo))
	}
	if s.dialect == MySQL {
		// A duplicate changes nothing and counts no affected row.
		q.WriteString(` ON DUPLICATE KEY UPDATE id = id`)
		res, err := tx.ExecContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("insert rows: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("count inserted rows: %w", err)
		}
		if n != int64(len(msgs)) {
			return nil, nil
		}
		first, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("read first id: %w", err)
		}
		return s.mysqlIDs(ctx, tx, msgs, first)
	}
	// SQLite returns the rows it inserted; a duplicate is left out.
	q.WriteString(` ON CONFLICT (user_id, client_id) DO NOTHING RETURNING id, user_id, client_id`)
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("insert rows: %w", err)
	}
	byKey, err := scanInsertedKeys(rows, len(msgs))
	if err != nil {
		return nil, fmt.Errorf("insert rows: %w", err)
	}
	if len(byKey) != len(msgs) {
		return nil, nil
	}
	return idsInOrder(msgs, byKey)
}

// insertedKey names a message by its (user, client id) pair.
type insertedKey struct {
	userID   int64
	clientID string
}

func scanInsertedKeys(rows *sql.Rows, n int) (map[insertedKey]int64, error) {
	defer rows.Close()
	byKey := make(map[insertedKey]int64, n)
	for rows.Next() {
		var (
			id  int64
			key insertedKey
		)
		if err := rows.Scan(&id, &key.userID, &key.clientID); err != nil {
			return nil, err
		}
		byKey[key] = id
	}
	return byKey, rows.Err()
}

func idsInOrder(msgs []chat.NewMessage, byKey map[insertedKey]int64) ([]int64, error) {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		id, ok := byKey[insertedKey{m.UserID, m.ClientID}]
		if !ok {
			return nil, fmt.Errorf("inserted message (user %d, client id %q) not found", m.UserID, m.ClientID)
		}
		ids[i] = id
	}
	return ids, nil
}

// mysqlIDs finds the ids a multi-row INSERT gave, first being the first.
// With innodb_autoinc_lock_mode 0 or 1 (MariaDB's default) the ids of one
// such statement are consecutive; otherwise (MySQL 8's default, 2) other
// sessions' rows may interleave, and the ids are read back.
func (s *DB) mysqlIDs(ctx context.Context, tx *sql.Tx, msgs []chat.NewMessage, first int64) ([]int64, error) {
	if s.consecutiveIDs {
		return consecutiveFrom(first, len(msgs)), nil
	}
	q, args := idsQuery(msgs, `?`)
	rows, err := tx.QueryContext(ctx, q, append([]any{first}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read inserted ids: %w", err)
	}
	byKey, err := scanInsertedKeys(rows, len(msgs))
	if err != nil {
		return nil, fmt.Errorf("read inserted ids: %w", err)
	}
	return idsInOrder(msgs, byKey)
}

// consecutiveFrom returns the n ids from first on: a multi-row INSERT's
// when they are consecutive.
func consecutiveFrom(first int64, n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	return ids
}

// idsQuery is the statement that reads back the ids of a multi-row
// INSERT's rows from the first one's, which first gives (a placeholder, or
// LAST_INSERT_ID()), and the arguments that follow first's.
func idsQuery(msgs []chat.NewMessage, first string) (string, []any) {
	var q strings.Builder
	q.WriteString(`SELECT id, user_id, client_id FROM messages WHERE id >= ` + first + ` AND (`)
	args := make([]any, 0, 2*len(msgs))
	for i, m := range msgs {
		if i > 0 {
			q.WriteString(` OR `)
		}
		q.WriteString(`(user_id = ? AND client_id = ?)`)
		args = append(args, m.UserID, m.ClientID)
	}
	q.WriteByte(')')
	return q.String(), args
}

// insertEach commits a group of messages in one transaction, a statement a
// row: the general path, which also reports the stored row of each
// duplicate.
func (s *DB) insertEach(ctx context.Context, msgs []chat.NewMessage) ([]chat.Inserted, error) {
	insert := messageInsert + ` ON CONFLICT (user_id, client_id) DO NOTHING`
	if s.dialect == MySQL {
		// LAST_INSERT_ID(id) makes a duplicate report the stored id with 0 rows affected.
		insert = messageInsert + ` ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)`
	}
	tx, done, err := s.beginGroup(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer done()
	defer tx.Rollback()
	last, err := s.lockChats(ctx, tx, chatIDsOf(msgs))
	if err != nil {
		return nil, err
	}
	if err := s.checkSenders(ctx, tx, msgs); err != nil {
		return nil, err
	}
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return nil, fmt.Errorf("prepare insert: %w", err)
	}
	defer stmt.Close()
	out := make([]chat.Inserted, len(msgs))
	for i, m := range msgs {
		res, err := stmt.ExecContext(ctx, m.ChatID, m.UserID, m.Kind, m.KeyVersion, m.Body, m.ClientID, ms(m.CreatedAt),
			nullID(m.ReplyTo), nil)
		if err != nil {
			return nil, fmt.Errorf("insert row: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("count inserted rows: %w", err)
		}
		if n == 1 {
			id, err := res.LastInsertId()
			if err != nil {
				return nil, fmt.Errorf("read inserted id: %w", err)
			}
			if m.Use != nil {
				if err := s.useEpoch(ctx, tx, *m.Use); err != nil {
					return nil, err
				}
			}
			out[i] = chat.Inserted{ID: id, ChatID: m.ChatID, Created: true, CreatedAt: m.CreatedAt, Prev: last[m.ChatID]}
			last[m.ChatID] = id
			continue
		}
		var created int64
		if err := tx.QueryRowContext(ctx, `SELECT id, chat_id, created_at FROM messages WHERE user_id = ? AND client_id = ?`, m.UserID, m.ClientID).
			Scan(&out[i].ID, &out[i].ChatID, &created); err != nil {
			return nil, fmt.Errorf("read stored duplicate: %w", err)
		}
		out[i].CreatedAt = time.UnixMilli(created).UTC()
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	s.restartLog(ctx)
	return out, nil
}

const messageColumns = ` m.id, m.chat_id, c.name, m.user_id, ` + shownName + `, m.kind, m.key_version, m.body,
	m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reply_to, m.target_id
	FROM messages m `

const messageJoins = `JOIN users u ON u.id = m.user_id JOIN chats c ON c.id = m.chat_id `

// messageSelect starts every query of messages. The rows are chosen by
// messages' own keys, so messages is read first: on MySQL/MariaDB,
// STRAIGHT_JOIN keeps the optimiser from starting with users (which, at
// millions of rows, became a temporary table and a filesort per page).
// SQLite already plans it so.
func (s *DB) messageSelect() string {
	if s.dialect == MySQL {
		return `SELECT STRAIGHT_JOIN` + messageColumns + messageJoins
	}
	return `SELECT` + messageColumns + messageJoins
}

// pageSelect starts the queries of a page of one chat (by id, before or
// after a point). On MySQL/MariaDB it also names the (chat_id, id) index:
// given only "id < ?" the optimiser sometimes walked the primary key
// instead, reading every chat's rows back to the page (p99 54 ms for a
// random page at 50,000 messages against 4 ms for the newest).
func (s *DB) pageSelect() string {
	if s.dialect == MySQL {
		return `SELECT STRAIGHT_JOIN` + messageColumns + `FORCE INDEX (messages_chat_id) ` + messageJoins
	}
	return s.messageSelect()
}

// isMessage selects the rows that are messages, leaving out edit and delete
// events.
const isMessage = `m.kind IN ('text', 'file', 'system')`

func scanMessages(rows *sql.Rows, capHint int) ([]chat.Message, error) {
	defer rows.Close()
	out := make([]chat.Message, 0, capHint)
	for rows.Next() {
		var (
			m                 chat.Message
			created           int64
			edited, deleted   sql.NullInt64
			replyTo, targetID sql.NullInt64
		)
		if err := rows.Scan(&m.ID, &m.ChatID, &m.ChatName, &m.UserID, &m.Username, &m.Kind, &m.KeyVersion, &m.Body,
			&m.ClientID, &created, &edited, &deleted, &replyTo, &targetID); err != nil {
			return nil, err
		}
		m.CreatedAt = time.UnixMilli(created).UTC()
		m.EditedAt = fromMS(edited)
		m.DeletedAt = fromMS(deleted)
		m.ReplyTo = replyTo.Int64
		m.TargetID = targetID.Int64
		out = append(out, m)
	}
	return out, rows.Err()
}

// MessagesBefore returns a keyset page of a chat's history, oldest first.
// History holds messages only: an edit or delete event has already changed
// its target, which the page shows as it is now.
func (s *DB) MessagesBefore(ctx context.Context, chatID, before int64, limit int) ([]chat.Message, bool, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.query(ctx, s.pageSelect()+`WHERE m.chat_id = ? AND m.id < ? AND `+isMessage+` ORDER BY m.id DESC LIMIT ?`,
		chatID, before, limit+1)
	if err != nil {
		return nil, false, s.fail("messages before", err)
	}
	msgs, err := scanMessages(rows, limit+1)
	if err != nil {
		return nil, false, s.fail("messages before: read messages", err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// MessagesAfter returns up to limit rows with id > after, oldest first:
// messages and the edit and delete events, so that a client catching up
// replays the changes too.
func (s *DB) MessagesAfter(ctx context.Context, chatID, after int64, limit int) ([]chat.Message, error) {
	rows, err := s.query(ctx, s.pageSelect()+`WHERE m.chat_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`, chatID, after, limit)
	if err != nil {
		return nil, s.fail("messages after", err)
	}
	msgs, err := scanMessages(rows, limit)
	return msgs, s.fail("messages after: read messages", err)
}

// idBatch is how many ids one IN list holds, well under the bind-variable
// limits of both databases.
const idBatch = 500

// placeholders returns n comma-separated bind markers.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// appendIDs appends ids to args, for placeholders(len(ids)).
func appendIDs(args []any, ids []int64) []any {
	for _, id := range ids {
		args = append(args, id)
	}
	return args
}

// MessagesByIDs returns the rows of a chat with the given ids, in id order;
// ids of other chats and missing ids are left out.
func (s *DB) MessagesByIDs(ctx context.Context, chatID int64, ids []int64) ([]chat.Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// Sorted and without repeats, batches come back in id order one after
	// another.
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []chat.Message
	for start := 0; start < len(ids); start += idBatch {
		batch := ids[start:min(start+idBatch, len(ids))]
		args := appendIDs(append(make([]any, 0, len(batch)+1), chatID), batch)
		rows, err := s.db.QueryContext(ctx, s.messageSelect()+`WHERE m.chat_id = ? AND m.id IN (`+placeholders(len(batch))+`) ORDER BY m.id`, args...)
		if err != nil {
			return nil, s.fail("messages by ids", err)
		}
		msgs, err := scanMessages(rows, len(batch))
		if err != nil {
			return nil, s.fail("messages by ids: read messages", err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// MessagesWithIDs returns the rows with the given ids whatever their chats,
// in id order; missing ids are left out. The chat list reads each chat's
// newest message with it, many chats in one query; the caller has checked
// that each id is the newest of a chat the asker is in.
func (s *DB) MessagesWithIDs(ctx context.Context, ids []int64) ([]chat.Message, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []chat.Message
	for start := 0; start < len(ids); start += idBatch {
		batch := ids[start:min(start+idBatch, len(ids))]
		args := appendIDs(make([]any, 0, len(batch)), batch)
		rows, err := s.db.QueryContext(ctx, s.messageSelect()+`WHERE m.id IN (`+placeholders(len(batch))+`) ORDER BY m.id`, args...)
		if err != nil {
			return nil, s.fail("messages with ids", err)
		}
		msgs, err := scanMessages(rows, len(batch))
		if err != nil {
			return nil, s.fail("messages with ids: read messages", err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// querier is what *sql.DB and *sql.Tx share for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// messageByID reads one row with its chat name and author; ENotFound when
// there is none.
func (s *DB) messageByID(ctx context.Context, q querier, id int64) (chat.Message, error) {
	rows, err := q.QueryContext(ctx, s.messageSelect()+`WHERE m.id = ?`, id)
	if err != nil {
		return chat.Message{}, err
	}
	msgs, err := scanMessages(rows, 1)
	if err != nil {
		return chat.Message{}, err
	}
	if len(msgs) == 0 {
		return chat.Message{}, chat.Errorf(chat.ENotFound, "No such message.")
	}
	return msgs[0], nil
}

// forUpdate is the locking clause of a read whose rows the transaction goes
// on to change. MySQL needs it: two transactions could otherwise both pass a
// check on the same row before either writes. SQLite has no such clause and
// no need of one: _txlock=immediate lets one writing transaction run at a
// time, and it reads the newest data.
func (s *DB) forUpdate() string {
	if s.dialect == MySQL {
		return ` FOR UPDATE`
	}
	return ""
}

// EditMessage applies an edit or delete to its target and inserts the event
// row that records it, in one transaction. A retried EventClientID returns
// the stored event and the target as it is now, and changes nothing.
func (s *DB) EditMessage(ctx context.Context, e chat.Edit) (chat.EditResult, error) {
	op := "edit message"
	if e.Delete {
		op = "delete message"
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.EditResult{}, s.fail(op+": begin", err)
	}
	defer tx.Rollback()
	// The chat first, as every writer of a chat's rows does (lockChats).
	last, err := s.lockChats(ctx, tx, []int64{e.ChatID})
	if err != nil {
		return chat.EditResult{}, s.fail(op, err)
	}

	// Lock the target before looking for the event: a retry racing the
	// first attempt then waits for it to commit and finds its event,
	// instead of finding the target already deleted.
	var (
		targetChat, author int64
		kind               string
		deleted            sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `SELECT chat_id, user_id, kind, deleted_at FROM messages WHERE id = ?`+s.forUpdate(), e.TargetID).
		Scan(&targetChat, &author, &kind, &deleted)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chat.EditResult{}, s.fail(op+": read target", err)
	}

	var (
		prev        chat.Inserted
		prevKind    string
		prevTarget  sql.NullInt64
		prevCreated int64
	)
	err = tx.QueryRowContext(ctx, `SELECT id, chat_id, kind, target_id, created_at FROM messages WHERE user_id = ? AND client_id = ?`+s.forUpdate(),
		e.UserID, e.EventClientID).Scan(&prev.ID, &prev.ChatID, &prevKind, &prevTarget, &prevCreated)
	switch {
	case err == nil:
		// The client id names the change, as it names a message in
		// InsertMessages: the stored event answers, whatever this request
		// says. A message, or an event of another chat, under that id is a
		// client reusing ids, not a retry.
		if (prevKind != chat.MessageEdit && prevKind != chat.MessageDelete) || prev.ChatID != e.ChatID {
			return chat.EditResult{}, s.fail(op, errClientIDUsed)
		}
		current, err := s.messageByID(ctx, tx, prevTarget.Int64)
		if err != nil {
			return chat.EditResult{}, s.fail(op+": read target", err)
		}
		prev.CreatedAt = time.UnixMilli(prevCreated).UTC()
		return chat.EditResult{Event: prev, Target: current}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return chat.EditResult{}, s.fail(op+": find earlier event", err)
	}

	switch {
	case !found || targetChat != e.ChatID || (kind != chat.MessageText && kind != chat.MessageFile && kind != chat.MessageSystem):
		return chat.EditResult{}, s.fail(op, chat.Errorf(chat.ENotFound, "No message %d in this chat.", e.TargetID))
	case author != e.UserID:
		return chat.EditResult{}, s.fail(op, chat.Errorf(chat.EForbidden, "Only its author can edit or delete a message."))
	case deleted.Valid:
		return chat.EditResult{}, s.fail(op, chat.Errorf(chat.EConflict, "That message has been deleted."))
	case !e.Delete && kind != chat.MessageText:
		return chat.EditResult{}, s.fail(op, chat.Errorf(chat.EInvalid, "Only text messages can be edited."))
	}

	eventKind := chat.MessageEdit
	if e.Delete {
		eventKind = chat.MessageDelete
		// The kind, client id and key version stay: they are the row's
		// identity, and a client shows the row as "deleted" in its place.
		_, err = tx.ExecContext(ctx, `UPDATE messages SET body = ?, deleted_at = ? WHERE id = ?`, []byte{}, ms(e.At), e.TargetID)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE messages SET body = ?, key_version = ?, edited_at = ? WHERE id = ?`,
			e.Body, e.KeyVersion, ms(e.At), e.TargetID)
	}
	if err != nil {
		return chat.EditResult{}, s.fail(op+": update target", err)
	}
	res, err := tx.ExecContext(ctx, messageInsert, e.ChatID, e.UserID, eventKind, e.EventKeyVersion, []byte{}, e.EventClientID, ms(e.At),
		nil, e.TargetID)
	if isUnique(err) {
		return chat.EditResult{}, s.fail(op, errClientIDUsed)
	}
	if err != nil {
		return chat.EditResult{}, s.fail(op+": insert event", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return chat.EditResult{}, s.fail(op+": read event id", err)
	}
	current, err := s.messageByID(ctx, tx, e.TargetID)
	if err != nil {
		return chat.EditResult{}, s.fail(op+": read target", err)
	}
	if err := tx.Commit(); err != nil {
		return chat.EditResult{}, s.fail(op+": commit", err)
	}
	return chat.EditResult{Event: chat.Inserted{ID: id, ChatID: e.ChatID, Created: true, CreatedAt: e.At, Prev: last[e.ChatID]}, Target: current}, nil
}

// errClientIDUsed answers a client id that already names a different row.
var errClientIDUsed = chat.Errorf(chat.EConflict, "That client id was already used for another message.")
