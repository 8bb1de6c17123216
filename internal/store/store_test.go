package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/testutil/mariadbtest"
	"github.com/mapsim/mapsim-chat/migrations"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

// dialect is one database the suite runs against. options returns the
// options of a new, empty database that belongs to the calling test.
type dialect struct {
	name    string
	options func(tb testing.TB) store.Options
}

var dialects = []dialect{
	{name: "sqlite", options: func(tb testing.TB) store.Options {
		return store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(tb.TempDir(), "data", "chat.db")}
	}},
	{name: "mariadb", options: mariadbtest.Options},
}

// forEachDialect runs the same test once on SQLite and once on MariaDB, each
// with a fresh database of its own.
func forEachDialect(t *testing.T, test func(t *testing.T, opts store.Options)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			test(t, d.options(t))
		})
	}
}

// base is a time with whole milliseconds, the precision the store keeps.
var base = time.Date(2025, 3, 1, 12, 0, 0, 123_000_000, time.UTC)

// MustOpen opens the store and closes it when the test ends.
func MustOpen(tb testing.TB, opts store.Options) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("open %s store: %v", opts.Driver, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustRawDB opens the same database with plain database/sql, for the few
// things the store deliberately has no method for (a future schema row, a
// second chat).
func MustRawDB(tb testing.TB, opts store.Options) *sql.DB {
	tb.Helper()
	var (
		db  *sql.DB
		err error
	)
	switch opts.Driver {
	case store.SQLite:
		db, err = sql.Open("sqlite", "file:"+opts.SQLitePath+"?_pragma=busy_timeout(10000)")
	case store.MySQL:
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = opts.User, opts.Password
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(opts.Host, opts.Port)
		cfg.DBName = opts.Name
		db, err = sql.Open("mysql", cfg.FormatDSN())
	default:
		tb.Fatalf("unknown driver %q", opts.Driver)
	}
	if err != nil {
		tb.Fatalf("raw open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustExec runs one statement on a raw database.
func MustExec(tb testing.TB, db *sql.DB, query string, args ...any) sql.Result {
	tb.Helper()
	res, err := db.ExecContext(context.Background(), query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return res
}

// MustCreateUser creates a user with a unique-enough email.
func MustCreateUser(tb testing.TB, db *store.DB, username string) chat.User {
	tb.Helper()
	u := chat.User{Username: username, Email: strings.ToLower(username) + "@example.com", PasswordHash: "$argon2id$hash-of-" + username,
		Role: chat.RoleMember, CreatedAt: base}
	if err := db.CreateUser(context.Background(), &u, nil); err != nil {
		tb.Fatalf("create user %s: %v", username, err)
	}
	return u
}

// MustGlobal returns the global chat.
func MustGlobal(tb testing.TB, db *store.DB) chat.Chat {
	tb.Helper()
	c, err := db.ChatByName(context.Background(), chat.GlobalChatName)
	if err != nil {
		tb.Fatalf("global chat: %v", err)
	}
	return c
}

// MustKeyVersion stores a key version for messages to refer to.
func MustKeyVersion(tb testing.TB, db *store.DB) int64 {
	tb.Helper()
	id, err := db.InsertKeyVersion(context.Background(), []byte("wrapped key"), base)
	if err != nil {
		tb.Fatalf("insert key version: %v", err)
	}
	return id
}

// MustGroupChat adds a group chat with the given members through raw SQL,
// past CreateChat: it works at every schema version, gives every member the
// role member and writes no system message.
func MustGroupChat(tb testing.TB, opts store.Options, name string, members ...int64) int64 {
	tb.Helper()
	raw := MustRawDB(tb, opts)
	res := MustExec(tb, raw, `INSERT INTO chats (name, kind, title, e2ee, created_by, created_at) VALUES (?, 'group', ?, 0, NULL, ?)`,
		name, name, base.UnixMilli())
	id, err := res.LastInsertId()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range members {
		MustExec(tb, raw, `INSERT INTO chat_members (chat_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)`, id, m, base.UnixMilli())
	}
	return id
}

// wantCode fails the test unless err carries the chat error code want.
func wantCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := chat.ErrorCode(err); got != want {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

// latestMigration is the newest migration this build embeds for a dialect.
func latestMigration(tb testing.TB, driver string) (version, count int) {
	tb.Helper()
	entries, err := fs.ReadDir(migrations.FS, driver)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			tb.Fatalf("migration %s: %v", e.Name(), err)
		}
		version, count = max(version, v), count+1
	}
	return version, count
}

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		want, files := latestMigration(t, opts.Driver)

		db := MustOpen(t, opts)
		if v, err := db.SchemaVersion(ctx); err != nil || v != want {
			t.Fatalf("schema version = %d, %v; want %d", v, err, want)
		}
		global := MustGlobal(t, db)
		if global.Kind != chat.KindGlobal || global.Name != chat.GlobalChatName {
			t.Fatalf("global chat = %+v", global)
		}
		alice := MustCreateUser(t, db, "alice")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		// Reopening applies nothing again and keeps the data.
		db = MustOpen(t, opts)
		if v, err := db.SchemaVersion(ctx); err != nil || v != want {
			t.Fatalf("after reopen: schema version = %d, %v; want %d", v, err, want)
		}
		raw := MustRawDB(t, opts)
		var rows, globals int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != files {
			t.Fatalf("schema_migrations has %d rows (%v), want %d", rows, err, files)
		}
		if err := raw.QueryRow(`SELECT COUNT(*) FROM chats WHERE kind = 'global'`).Scan(&globals); err != nil || globals != 1 {
			t.Fatalf("%d global chats (%v), want 1", globals, err)
		}
		if again := MustGlobal(t, db); again.ID != global.ID {
			t.Fatalf("global chat id %d after reopen, was %d", again.ID, global.ID)
		}
		if u, err := db.UserByID(ctx, alice.ID); err != nil || u.Username != "alice" {
			t.Fatalf("user after reopen = %+v, %v", u, err)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		db := MustOpen(t, opts)
		db.Close()
		MustExec(t, MustRawDB(t, opts), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_from_the_future.sql', 0)`)

		db, err := store.Open(context.Background(), opts)
		if err == nil {
			db.Close()
			t.Fatal("opened a database whose schema is newer than this build")
		}
		if !strings.Contains(err.Error(), "9999") {
			t.Fatalf("error does not name the database's version 9999: %v", err)
		}
	})
}

func TestOpenUnknownDriver(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), store.Options{Driver: "postgres"})
	if err == nil {
		db.Close()
		t.Fatal("opened an unknown driver")
	}
	if !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("error does not name the driver: %v", err)
	}
}

func TestChatLookups(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		global := MustGlobal(t, db)
		byID, err := db.ChatByID(ctx, global.ID)
		if err != nil || byID != global {
			t.Fatalf("ChatByID = %+v, %v; want %+v", byID, err, global)
		}
		for name, lookup := range map[string]func() error{
			"unknown name":            func() error { _, err := db.ChatByName(ctx, "nope"); return err },
			"name differing in case":  func() error { _, err := db.ChatByName(ctx, "GLOBAL"); return err },
			"unknown id":              func() error { _, err := db.ChatByID(ctx, global.ID+1000); return err },
			"unknown user by id":      func() error { _, err := db.UserByID(ctx, 12345); return err },
			"unknown session by id":   func() error { _, err := db.SessionByID(ctx, 12345); return err },
			"unknown session by hash": func() error { _, err := db.SessionByTokenHash(ctx, make([]byte, 32)); return err },
		} {
			t.Run(name, func(t *testing.T) { wantCode(t, lookup(), chat.ENotFound) })
		}
	})
}

// proxy forwards TCP connections to a target until stopped, so that a test
// can make the database go away under one store without stopping the
// MariaDB server the other tests share.
type proxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	conns   []net.Conn
	stopped bool
	wg      sync.WaitGroup
}

// MustProxy starts a proxy to target on a loopback port; it stops when the
// test ends.
func MustProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Stop)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(server, client); server.Close() }()
		go func() { defer p.wg.Done(); io.Copy(client, server); client.Close() }()
	}
}

// track remembers a connection pair; false when the proxy already stopped.
func (p *proxy) track(client, server net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		client.Close()
		server.Close()
		return false
	}
	p.conns = append(p.conns, client, server)
	return true
}

// Port is the port the proxy listens on.
func (p *proxy) Port() string { return strconv.Itoa(p.ln.Addr().(*net.TCPAddr).Port) }

// Stop closes the listener and every forwarded connection: to the store the
// database has gone away. It is safe to call twice.
func (p *proxy) Stop() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.stopped = nil, true
	p.mu.Unlock()
	p.wg.Wait()
}

// Cut closes every forwarded connection but goes on accepting new ones:
// to the store the server restarted, or dropped its idle connections.
func (p *proxy) Cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// TestDatabaseRestartLosesNoSend: after MariaDB drops the connections a
// store keeps in its pools (a restart, wait_timeout), the next message
// group and read take new ones and succeed: a pooled connection found
// dead before anything was sent on it is not the sender's error.
func TestDatabaseRestartLosesNoSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := mariadbtest.Options(t)
	p := MustProxy(t, net.JoinHostPort(opts.Host, opts.Port))
	opts.Port = p.Port()
	db := MustOpen(t, opts)
	kv := MustKeyVersion(t, db)
	alice := MustCreateUser(t, db, "alice")
	group := MustGroupChat(t, opts, "g-restart", alice.ID)
	for round := range 3 {
		// Warm the groups' pool (the other one made the user and reads
		// below), then drop every connection of both.
		for i := range 4 {
			MustInsert(t, db, text(group, alice.ID, kv, fmt.Sprintf("r%d-warm%d", round, i), "warm", base))
		}
		p.Cut()
		got, err := db.InsertMessages(ctx, []chat.NewMessage{
			text(group, alice.ID, kv, fmt.Sprintf("r%d-a", round), "after", base),
			text(group, alice.ID, kv, fmt.Sprintf("r%d-b", round), "the cut", base),
		})
		if err != nil || len(got) != 2 || !got[0].Created || !got[1].Created {
			t.Fatalf("round %d: a group after the connections were dropped: %+v, %v", round, got, err)
		}
		if _, err := db.UserByUsername(ctx, "alice"); err != nil {
			t.Fatalf("round %d: a read after the connections were dropped: %v", round, err)
		}
	}
	MustNoChatLock(t, opts, group)
}

func TestDatabaseGoneIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := map[string]func(db *store.DB) error{
		"Ping":           func(db *store.DB) error { return db.Ping(ctx) },
		"UserByUsername": func(db *store.DB) error { _, err := db.UserByUsername(ctx, "alice"); return err },
		"InsertMessages": func(db *store.DB) error {
			_, err := db.InsertMessages(ctx, []chat.NewMessage{{ChatID: 1, UserID: 1, Kind: chat.MessageText, KeyVersion: 1, Body: []byte("x"), ClientID: "c1", CreatedAt: base}})
			return err
		},
		"MessagesBefore": func(db *store.DB) error { _, _, err := db.MessagesBefore(ctx, 1, 0, 10); return err },
	}
	check := func(t *testing.T, db *store.DB) {
		for name, call := range calls {
			t.Run(name, func(t *testing.T) {
				err := call(db)
				wantCode(t, err, chat.EUnavailable)
				var ce *chat.Error
				if errors.As(err, &ce) && strings.Contains(ce.Message, "127.0.0.1") {
					t.Errorf("user-facing message leaks the database address: %q", ce.Message)
				}
			})
		}
	}

	t.Run("sqlite closed", func(t *testing.T) {
		t.Parallel()
		db := MustOpen(t, dialects[0].options(t))
		MustCreateUser(t, db, "alice")
		db.Close()
		check(t, db)
	})
	t.Run("mariadb gone", func(t *testing.T) {
		t.Parallel()
		opts := mariadbtest.Options(t)
		p := MustProxy(t, net.JoinHostPort(opts.Host, opts.Port))
		opts.Port = p.Port()
		db := MustOpen(t, opts)
		MustCreateUser(t, db, "alice")
		p.Stop()
		check(t, db)
	})
	t.Run("mariadb never there", func(t *testing.T) {
		t.Parallel()
		// A port nothing listens on: Open fails and says which database.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		db, err := store.Open(ctx, store.Options{Driver: store.MySQL, Host: "127.0.0.1", Port: port, Name: "x", User: "root"})
		if err == nil {
			db.Close()
			t.Fatal("opened a database that is not there")
		}
		if !strings.Contains(err.Error(), "mysql") {
			t.Errorf("error does not say which database failed: %v", err)
		}
	})
}

// Upgrading a database that already holds messages keeps every row as it
// was, under its id, and the rules that came with the table: one message per
// (user, client id), ids never reused.
func TestMigrationChatsKeepsMessages(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		old, err := store.OpenAtVersion(ctx, opts, 1)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
			t.Fatalf("schema version = %d, %v; want 1", v, err)
		}
		alice, bob := MustCreateOldUser(t, opts, "alice"), MustCreateOldUser(t, opts, "bob")
		kv := MustKeyVersion(t, old)
		global := MustGlobal(t, old)
		ops := MustGroupChat(t, opts, "ops", alice.ID, bob.ID)
		old.Close()

		// The rows go in through plain SQL: this build's store reads and
		// writes the new columns, which version 1 does not have.
		raw := MustRawDB(t, opts)
		ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
		type row struct {
			chatID, userID  int64
			kind, clientID  string
			body            []byte
			created         int64
			edited, deleted sql.NullInt64
		}
		rows := []row{
			{global.ID, alice.ID, chat.MessageText, "a1", []byte("one\x00\xff"), ms(0), sql.NullInt64{}, sql.NullInt64{}},
			{global.ID, bob.ID, chat.MessageText, "b1", []byte("two"), ms(time.Second), sql.NullInt64{Int64: ms(time.Minute), Valid: true}, sql.NullInt64{}},
			{ops, alice.ID, chat.MessageFile, "a2", []byte("file"), ms(2 * time.Second), sql.NullInt64{}, sql.NullInt64{}},
			{global.ID, alice.ID, chat.MessageText, "a3", []byte{}, ms(3 * time.Second), sql.NullInt64{}, sql.NullInt64{Int64: ms(time.Hour), Valid: true}},
			{global.ID, bob.ID, chat.MessageText, "b2", []byte("newest, gone before the upgrade"), ms(4 * time.Second), sql.NullInt64{}, sql.NullInt64{}},
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			res := MustExec(t, raw, `INSERT INTO messages (chat_id, user_id, kind, key_version, body, client_id, created_at, edited_at, deleted_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.chatID, r.userID, r.kind, kv, r.body, r.clientID, r.created, r.edited, r.deleted)
			id, err := res.LastInsertId()
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = id
		}
		gone := ids[len(ids)-1]
		MustExec(t, raw, `DELETE FROM messages WHERE id = ?`, gone)
		rows, ids = rows[:len(rows)-1], ids[:len(ids)-1]

		db := MustOpen(t, opts)
		want, _ := latestMigration(t, opts.Driver)
		if v, err := db.SchemaVersion(ctx); err != nil || v != want {
			t.Fatalf("schema version after upgrade = %d, %v; want %d", v, err, want)
		}
		var stored []chat.Message
		for _, chatID := range []int64{global.ID, ops} {
			stored = append(stored, MustHistory(t, db, chatID)...)
		}
		slices.SortFunc(stored, func(a, b chat.Message) int { return int(a.ID - b.ID) })
		if len(stored) != len(rows) {
			t.Fatalf("%d messages after the upgrade, want %d", len(stored), len(rows))
		}
		for i, m := range stored {
			r := rows[i]
			if m.ID != ids[i] || m.ChatID != r.chatID || m.UserID != r.userID || m.Kind != r.kind || m.ClientID != r.clientID ||
				!bytes.Equal(m.Body, r.body) || m.KeyVersion != kv || m.CreatedAt.UnixMilli() != r.created ||
				m.EditedAt.IsZero() == r.edited.Valid || (r.edited.Valid && m.EditedAt.UnixMilli() != r.edited.Int64) ||
				m.DeletedAt.IsZero() == r.deleted.Valid || (r.deleted.Valid && m.DeletedAt.UnixMilli() != r.deleted.Int64) ||
				m.ReplyTo != 0 || m.TargetID != 0 {
				t.Fatalf("message %d after the upgrade = %+v, was %+v with id %d", i, m, r, ids[i])
			}
		}

		// Ids go on after the deleted one. (First: a resend may use up an id.)
		fresh := MustInsert(t, db, chat.NewMessage{ChatID: global.ID, UserID: bob.ID, Kind: chat.MessageText, KeyVersion: kv, Body: []byte("x"), ClientID: "b3", CreatedAt: base, ReplyTo: ids[0]})
		if !fresh[0].Created || fresh[0].ID <= gone {
			t.Fatalf("new message after the upgrade = %+v, want an id above %d", fresh[0], gone)
		}
		// (user, client id) is still unique.
		again := MustInsert(t, db, chat.NewMessage{ChatID: global.ID, UserID: alice.ID, Kind: chat.MessageText, KeyVersion: kv, Body: []byte("x"), ClientID: "a1", CreatedAt: base})
		if again[0].Created || again[0].ID != ids[0] {
			t.Fatalf("resending an old client id = %+v, want the stored id %d", again[0], ids[0])
		}
		// The new kinds are allowed.
		if _, err := db.EditMessage(ctx, chat.Edit{ChatID: global.ID, UserID: bob.ID, TargetID: ids[1], KeyVersion: kv, Body: []byte("2"),
			EventKeyVersion: kv, EventClientID: "b1-edit", At: base}); err != nil {
			t.Fatalf("edit after the upgrade: %v", err)
		}

		var indexes int
		query := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND name = 'messages_chat_id'`
		if opts.Driver == store.MySQL {
			query = `SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics
				WHERE table_schema = DATABASE() AND table_name = 'messages' AND index_name = 'messages_chat_id'`
		}
		if err := raw.QueryRow(query).Scan(&indexes); err != nil || indexes != 1 {
			t.Fatalf("index messages_chat_id: %d, %v", indexes, err)
		}
		if opts.Driver == store.SQLite {
			var leftovers int
			if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%messages_new%'`).Scan(&leftovers); err != nil || leftovers != 0 {
				t.Fatalf("%d schema objects still named messages_new (%v)", leftovers, err)
			}
			problems, err := raw.Query(`PRAGMA foreign_key_check`)
			if err != nil {
				t.Fatal(err)
			}
			defer problems.Close()
			if problems.Next() {
				t.Fatal("foreign_key_check reports broken references after the upgrade")
			}
		}
	})
}

// A request racing shutdown gets "unavailable", not an internal error, also
// from a query whose prepared statement Close has closed.
func TestQueriesAfterCloseAreUnavailable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		db, err := store.Open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := db.ChatByName(ctx, chat.GlobalChatName); err != nil { // prepares it
			t.Fatal(err)
		}
		db.Close()
		_, err = db.ChatByName(ctx, chat.GlobalChatName) // also when it was cached
		wantCode(t, err, chat.EUnavailable)
		_, err = db.ChatByName(ctx, "not-cached")
		wantCode(t, err, chat.EUnavailable)
		_, err = db.UserChatIDs(ctx, 1)
		wantCode(t, err, chat.EUnavailable)
	})
}

// TestMigrateFillsGaps: a database that received a later migration before
// an earlier one (two branches' migrations merged in either order) gets
// the missing one at the next open, and every version ends up recorded
// once.
func TestMigrateFillsGaps(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db, err := store.OpenAtVersion(ctx, opts, 3)
		if err != nil {
			t.Fatal(err)
		}
		// 0005 before 0004, as an out-of-order merge would leave it.
		if err := store.ApplyMigration(ctx, db, 5); err != nil {
			t.Fatal(err)
		}
		db.Close()
		MustOpen(t, opts)
		raw := MustRawDB(t, opts)
		rows, err := raw.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got, want []int
		for rows.Next() {
			var v int
			rows.Scan(&v)
			got = append(got, v)
		}
		entries, _ := fs.ReadDir(migrations.FS, opts.Driver)
		for _, e := range entries {
			num, _, _ := strings.Cut(e.Name(), "_")
			v, err := strconv.Atoi(num)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, v)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("recorded versions %v, want %v", got, want)
		}
		// 0004's index is there.
		q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'sessions_revoked'`
		if opts.Driver == store.MySQL {
			q = `SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = 'sessions_revoked'`
		}
		var n int
		if err := raw.QueryRowContext(ctx, q).Scan(&n); err != nil || n == 0 {
			t.Fatalf("0004's index: %d, %v", n, err)
		}
	})
}
