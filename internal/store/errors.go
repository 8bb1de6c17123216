package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"

	"github.com/go-sql-driver/mysql"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// fail is how every error leaves the store: it names the operation op, in
// the words of the domain, so that an operator reading the log can tell
// which query broke ("store: add members: insert member: ..."), and it
// turns the errors of a database that went away or is overloaded into
// EUnavailable, a 503 that clients retry, instead of an opaque 500. The
// driver's error stays in the chain for the log and for errors.As. A
// *chat.Error the store made on purpose (a user that does not exist, a
// taken username) keeps its code and its sentence: chat.ErrorMessage finds
// it through the prefix.
func (s *DB) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *chat.Error
	if !errors.As(err, &ce) && (s.closed.Load() || unavailable(err)) {
		// Once Close has begun, whatever fails is the pool, a statement or
		// a connection being closed under the request: that is shutdown,
		// not a fault of the request, whatever the error says.
		err = fmt.Errorf("%w (%w)", &chat.Error{Code: chat.EUnavailable, Message: "The database is unavailable; try again shortly."}, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// unavailable reports whether err says that the database went away or is
// overloaded, judged by the driver's error values, error numbers and result
// codes, never by an error's text (which a driver may reword in any
// release).
func unavailable(err error) bool {
	var (
		netErr net.Error
		opErr  *net.OpError
	)
	// A connection that broke or could not be made. net.Error also matches
	// context.DeadlineExceeded: the database did not answer in time.
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.As(err, &opErr) || errors.As(err, &netErr) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return mysqlUnavailable[me.Number]
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// The primary result code is the low byte of an extended one
		// (SQLITE_BUSY_SNAPSHOT is SQLITE_BUSY | 2<<8).
		return sqliteUnavailable[se.Code()&0xff]
	}
	return false
}

// mysqlUnavailable holds the MySQL/MariaDB error numbers that mean the
// server is gone or overloaded. In each case the request's transaction was
// rolled back whole (the store rolls back on any error), so trying the
// request again is safe, and once the server recovers it succeeds.
var mysqlUnavailable = map[uint16]bool{
	1040: true, // ER_CON_COUNT_ERROR: too many connections (max_connections)
	1203: true, // ER_TOO_MANY_USER_CONNECTIONS: max_user_connections, the same limit for our one account
	1053: true, // ER_SERVER_SHUTDOWN: the server is shutting down
	1927: true, // ER_CONNECTION_KILLED (MariaDB): the connection was killed, by a shutdown or an administrator
	2006: true, // CR_SERVER_GONE_ERROR: MySQL server has gone away
	2013: true, // CR_SERVER_LOST: lost connection during a query
	// Lock contention: under load a transaction may wait out
	// innodb_lock_wait_timeout, or lose a deadlock that InnoDB breaks by
	// rolling it back. MySQL's manual asks applications to retry those
	// transactions; a 503 makes the client do so, where a 500 would show a
	// failure it can do nothing about.
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK
	// A full disk or tablespace, as SQLITE_FULL below: nothing can be
	// written until the operator frees space, and then the same write works.
	1021: true, // ER_DISK_FULL
	1114: true, // ER_RECORD_FILE_FULL: the table is full
}

// sqliteUnavailable holds the primary SQLite result codes that mean the
// database, or the disk and memory under it, cannot serve the request now,
// though the request and the store's code are fine: the same request
// succeeds once the lock is free, the disk has room or the file is back.
// The rest stay internal errors because trying again cannot help: among
// them SQLITE_ERROR (a bad query), SQLITE_CONSTRAINT (handled where it is
// expected, see isUnique), SQLITE_CORRUPT and SQLITE_NOTADB (a damaged
// file), SQLITE_MISUSE, and SQLITE_LOCKED, which without a shared cache
// (this store never enables one) means a connection conflicting with its
// own statements: a bug in the store, not a busy database.
var sqliteUnavailable = map[int]bool{
	// Another connection held the lock for longer than busy_timeout
	// (busyTimeoutMS): the database is overloaded.
	sqlite3.SQLITE_BUSY: true,
	// SQLite gave up retrying a race for the WAL's shared-memory locks,
	// contention again.
	sqlite3.SQLITE_PROTOCOL: true,
	// The disk is full: reads still work, and writes will once space is
	// freed.
	sqlite3.SQLITE_FULL: true,
	// The disk or file system failed to read or write, or the file was
	// deleted or replaced under the server: the database is not there.
	sqlite3.SQLITE_IOERR:    true,
	sqlite3.SQLITE_CANTOPEN: true, // also the process out of file descriptors
	// The file or its folder became read-only (a permission change, a file
	// system remounted read-only after errors).
	sqlite3.SQLITE_READONLY: true,
	// The process ran out of memory, an overload that passes.
	sqlite3.SQLITE_NOMEM: true,
}

// isNullRefused reports whether err is MySQL's refusal of a NULL in a NOT
// NULL column (in strict mode, also for a row of a multi-row INSERT).
func isNullRefused(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1048
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return false
}
