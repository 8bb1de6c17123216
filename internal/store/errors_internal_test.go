package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MustSQLiteDB opens a bare SQLite database of the test's own, with no busy
// timeout, for provoking SQLite's errors.
func MustSQLiteDB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tb.TempDir(), "errors.db")+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)`); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t (id, body) VALUES (1, x''), (2, x'')`); err != nil {
		tb.Fatal(err)
	}
	return db
}

// MustConn takes a connection of its own from db.
func MustConn(tb testing.TB, db *sql.DB) *sql.Conn {
	tb.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// MustSQLiteError checks that err is a SQLite error with the primary result
// code want, so that a case tests the error it names, and returns it.
func MustSQLiteError(tb testing.TB, err error, want int) error {
	tb.Helper()
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != want {
		tb.Fatalf("provoked %v (%T), want SQLite result code %d", err, err, want)
	}
	return err
}

// sqliteBusy is a real SQLITE_BUSY: a second writer while a first holds
// the write lock, with no busy timeout to wait it out.
func sqliteBusy(tb testing.TB, db *sql.DB) error {
	tb.Helper()
	ctx := context.Background()
	holder := MustConn(tb, db)
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		tb.Fatal(err)
	}
	defer holder.ExecContext(ctx, `ROLLBACK`)
	_, err := MustConn(tb, db).ExecContext(ctx, `BEGIN IMMEDIATE`)
	return MustSQLiteError(tb, err, sqlite3.SQLITE_BUSY)
}

// sqliteLocked is a real SQLITE_LOCKED: a connection dropping a table that
// one of its own statements is still reading.
func sqliteLocked(tb testing.TB, db *sql.DB) error {
	tb.Helper()
	ctx := context.Background()
	conn := MustConn(tb, db)
	rows, err := conn.QueryContext(ctx, `SELECT id FROM t`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		tb.Fatal("no rows to read")
	}
	_, err = conn.ExecContext(ctx, `DROP TABLE t`)
	return MustSQLiteError(tb, err, sqlite3.SQLITE_LOCKED)
}

// sqliteFull is a real SQLITE_FULL: a write past max_page_count, as a full
// disk would refuse it.
func sqliteFull(tb testing.TB, db *sql.DB) error {
	tb.Helper()
	ctx := context.Background()
	conn := MustConn(tb, db)
	if _, err := conn.ExecContext(ctx, `PRAGMA max_page_count = 1`); err != nil {
		tb.Fatal(err)
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO t (body) VALUES (zeroblob(100000))`)
	return MustSQLiteError(tb, err, sqlite3.SQLITE_FULL)
}

// sqliteReadOnly is a real SQLITE_READONLY: a write on a connection that
// may only read.
func sqliteReadOnly(tb testing.TB, db *sql.DB) error {
	tb.Helper()
	ctx := context.Background()
	conn := MustConn(tb, db)
	if _, err := conn.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
		tb.Fatal(err)
	}
	_, err := conn.ExecContext(ctx, `INSERT INTO t (body) VALUES (x'')`)
	return MustSQLiteError(tb, err, sqlite3.SQLITE_READONLY)
}

// sqliteCantOpen is a real SQLITE_CANTOPEN: a database file in a folder
// that is not there.
func sqliteCantOpen(tb testing.TB) error {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tb.TempDir(), "missing", "chat.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	return MustSQLiteError(tb, db.Ping(), sqlite3.SQLITE_CANTOPEN)
}

// sqliteErr runs query on db and returns its error, checked to be a SQLite
// error with the primary code want.
func sqliteErr(tb testing.TB, db *sql.DB, want int, query string) error {
	tb.Helper()
	_, err := db.Exec(query)
	return MustSQLiteError(tb, err, want)
}

// The classifier goes by error values, numbers and result codes: a
// database that went away or is overloaded is "unavailable", with the
// driver's error still in the chain; anything else stays internal; the
// store's own errors keep their code and sentence; and every error names
// its operation.
func TestFailClassifies(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), Options{Driver: SQLite, SQLitePath: filepath.Join(t.TempDir(), "data", "chat.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := MustSQLiteDB(t)
	syntax := sqliteErr(t, db, sqlite3.SQLITE_ERROR, `SELEC 1`)

	const sentence = "The database is unavailable; try again shortly."
	tests := []struct {
		name     string
		err      error
		wantCode string
	}{
		{"mysql server gone away", &mysql.MySQLError{Number: 2006, Message: "MySQL server has gone away"}, chat.EUnavailable},
		{"mysql lost connection", &mysql.MySQLError{Number: 2013, Message: "Lost connection to MySQL server during query"}, chat.EUnavailable},
		{"mysql too many connections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, chat.EUnavailable},
		{"mysql shutting down", &mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, chat.EUnavailable},
		{"mysql lock wait timeout", &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, chat.EUnavailable},
		{"mysql deadlock", &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}, chat.EUnavailable},
		{"mysql syntax error", &mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, chat.EInternal},
		{"mysql duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, chat.EInternal},
		{"wrapped bad connection", fmt.Errorf("exec: %w", driver.ErrBadConn), chat.EUnavailable},
		{"mysql invalid connection", mysql.ErrInvalidConn, chat.EUnavailable},
		{"connection done", sql.ErrConnDone, chat.EUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, chat.EUnavailable},
		{"sqlite busy", sqliteBusy(t, db), chat.EUnavailable},
		{"sqlite full", sqliteFull(t, db), chat.EUnavailable},
		{"sqlite read-only", sqliteReadOnly(t, db), chat.EUnavailable},
		{"sqlite cannot open", sqliteCantOpen(t), chat.EUnavailable},
		{"sqlite locked by its own connection", sqliteLocked(t, db), chat.EInternal},
		{"sqlite syntax error", syntax, chat.EInternal},
		{"sqlite unique", sqliteErr(t, db, sqlite3.SQLITE_CONSTRAINT, `INSERT INTO t (id) VALUES (1)`), chat.EInternal},
		// database/sql's own text, from anything but a closed store, is no
		// reason to say the database is gone.
		{"closed text while open", errors.New("sql: database is closed"), chat.EInternal},
		{"store's own error", chat.Errorf(chat.ENotFound, "There is no user with id 3."), chat.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.fail("add members: insert member", tt.err)
			if code := chat.ErrorCode(got); code != tt.wantCode {
				t.Fatalf("code = %q, want %q (err: %v)", code, tt.wantCode, got)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("%v does not hold the error it was given", got)
			}
			if !strings.HasPrefix(got.Error(), "store: add members: insert member: ") {
				t.Errorf("error %q does not name its operation", got)
			}
			var ce *chat.Error
			if tt.wantCode == chat.EUnavailable && (!errors.As(got, &ce) || ce.Message != sentence) {
				t.Errorf("message = %q, want %q", chat.ErrorMessage(got), sentence)
			}
			if tt.wantCode == chat.ENotFound && chat.ErrorMessage(got) != "There is no user with id 3." {
				t.Errorf("message = %q, want the store's own sentence", chat.ErrorMessage(got))
			}
		})
	}
	if err := s.fail("ping", nil); err != nil {
		t.Errorf("fail(nil) = %v", err)
	}

	// Once Close has begun every failure is the shutdown's, but the store's
	// own errors still say what they said.
	s.Close()
	for _, err := range []error{syntax, errors.New("sql: statement is closed"), errors.New("anything at all")} {
		if got := s.fail("chat by name", err); chat.ErrorCode(got) != chat.EUnavailable || !errors.Is(got, err) {
			t.Errorf("after Close, %v became %v (code %q)", err, got, chat.ErrorCode(got))
		}
	}
	if got := s.fail("chat by name", chat.Errorf(chat.ENotFound, "No such chat.")); chat.ErrorCode(got) != chat.ENotFound {
		t.Errorf("after Close, the store's ENotFound became %v", got)
	}
}
