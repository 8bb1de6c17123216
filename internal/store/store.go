// Package store is Mapsim Chat's database/sql store for SQLite (embedded, the
// zero-config default) and MySQL/MariaDB. Both dialects share one schema and,
// where the SQL allows, one set of queries.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Dialects.
const (
	SQLite = "sqlite"
	MySQL  = "mysql"
)

// Options say which database to open.
type Options struct {
	Driver string // SQLite or MySQL
	// SQLitePath is the database file for SQLite.
	SQLitePath string
	// MySQL connection.
	Host, Port, Name, User, Password string
	// Timing, when set, times every statement (the server's metrics).
	Timing *Timing
}

// DB is the store. It implements the Store interface of each service that
// needs one (auth, chats, delivery, keyring, uploads); run wires them.
type DB struct {
	db *sql.DB
	// groups is the pool message groups commit through on MySQL (several
	// statements a request; see insertBatched); nil on SQLite.
	groups  *sql.DB
	dialect string
	// consecutiveIDs: one multi-row INSERT gets consecutive ids (MySQL's
	// innodb_autoinc_lock_mode is 0 or 1).
	consecutiveIDs bool

	// SQLite's background checkpoints: closed to stop them, and closed by
	// them once stopped.
	stopCheckpoints, checkpointsDone chan struct{}
	closeOnce                        sync.Once
	// closed is set as Close begins: from then on every failure is the
	// shutdown's doing (see fail).
	closed atomic.Bool

	// writer is the connection message groups commit on (SQLite; see
	// beginGroup), opened at the first group and held until Close.
	writerMu sync.Mutex
	writer   *sql.Conn

	// walFrames is the log's size in pages at the last checkpoint, and
	// lastGroup when the last group committed (Unix nanoseconds); see
	// restartLog.
	walFrames, lastGroup atomic.Int64

	// stmts holds the prepared statements of the fixed queries (see
	// prepared), by their text.
	stmts sync.Map

	// cache keeps chats and memberships (cache.go).
	cache *chatCache
}

// Open connects to the database, applies pending migrations and returns the
// store. It refuses a schema newer than this binary knows.
func Open(ctx context.Context, opts Options) (*DB, error) {
	return open(ctx, opts, 0)
}

// open is Open applying migrations only up to version upTo (0: all), so
// that a test can build a database as an older release left it.
func open(ctx context.Context, opts Options, upTo int) (*DB, error) {
	// failed names the step of opening that failed.
	failed := func(step string, err error) error {
		return fmt.Errorf("store: open %s database: %s: %w", opts.Driver, step, err)
	}
	var db, groups *sql.DB
	switch opts.Driver {
	case SQLite:
		if err := os.MkdirAll(filepath.Dir(opts.SQLitePath), 0o700); err != nil {
			return nil, failed("create its folder", err)
		}
		// The database holds password hashes: create it owner-only. SQLite
		// gives its -wal and -shm files the same mode.
		f, err := os.OpenFile(opts.SQLitePath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, failed("create its file", err)
		}
		f.Close()
		// WAL lets readers run beside the one writer; synchronous=FULL makes a
		// commit durable before the message is acknowledged. Checkpoints
		// run in the background (see checkpoints), not inside whichever
		// commit crosses the WAL's size, and the log starts over without
		// holding writers back (see restartLog); the statement journal of a
		// multi-row INSERT stays in memory. The page cache is 2 MiB a pooled
		// connection (SQLite's default size; readers lose it whenever another
		// connection commits anyway), and 16 MiB on the committer's (see
		// beginGroup).
		dsn := "file:" + opts.SQLitePath +
			"?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
			"&_pragma=foreign_keys(1)&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-" + strconv.Itoa(readerCacheKiB) + ")&_pragma=temp_store(MEMORY)&_pragma=journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")&_txlock=immediate"
		db, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, failed("open", err)
		}
		if opts.Timing != nil {
			drv := db.Driver()
			db.Close() // it has opened no connection yet
			db = sql.OpenDB(timedConnector{Connector: dsnConnector{dsn: dsn, drv: drv}, t: opts.Timing})
		}
		// Eight for requests and the checkpoints, one held by the committer.
		db.SetMaxOpenConns(9)
		db.SetMaxIdleConns(9)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	case MySQL:
		cfg := mysql.NewConfig()
		cfg.User = opts.User
		cfg.Passwd = opts.Password
		cfg.Net = "tcp"
		cfg.Addr = net.JoinHostPort(opts.Host, opts.Port)
		cfg.DBName = opts.Name
		cfg.Collation = "utf8mb4_unicode_ci"
		cfg.Loc = time.UTC
		cfg.Timeout = 5 * time.Second
		cfg.ReadTimeout = 30 * time.Second
		cfg.WriteTimeout = 30 * time.Second
		cfg.Params = map[string]string{"sql_mode": "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"}
		// The driver puts the arguments into the statement itself, escaped
		// for the connection's utf8mb4 and the server's NO_BACKSLASH_ESCAPES
		// state, instead of preparing each statement on the server: one
		// round trip a statement, not a prepare, an execute and a close.
		// A message's transaction holds its chat's row lock across its
		// statements, and several nodes wait on that lock (see lockChats).
		cfg.InterpolateParams = true
		// 0: the driver reads the server's max_allowed_packet when it
		// connects, and sends a statement too long for it as a prepared
		// one (its arguments in pieces) instead of interpolated.
		cfg.MaxAllowedPacket = 0
		var err error
		if db, err = mysqlPool(cfg, opts.Timing, 32); err != nil {
			return nil, failed("settings", err)
		}
		// A message group is one request of several statements (see
		// insertBatched), on connections of their own: only they allow
		// several statements in one request.
		gcfg := cfg.Clone()
		gcfg.MultiStatements = true
		if groups, err = mysqlPool(gcfg, opts.Timing, 4); err != nil {
			db.Close()
			return nil, failed("settings", err)
		}
	default:
		return nil, fmt.Errorf("store: unknown database driver %q", opts.Driver)
	}
	s := &DB{db: db, groups: groups, dialect: opts.Driver, cache: newChatCache()}
	closeAll := func() {
		db.Close()
		if groups != nil {
			groups.Close()
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		closeAll()
		return nil, failed("connect", err)
	}
	if err := s.migrate(ctx, upTo); err != nil {
		closeAll()
		return nil, failed("migrate", err)
	}
	if s.dialect == MySQL {
		var mode int
		if err := db.QueryRowContext(ctx, `SELECT @@innodb_autoinc_lock_mode`).Scan(&mode); err != nil {
			closeAll()
			return nil, failed("read innodb_autoinc_lock_mode", err)
		}
		s.consecutiveIDs = mode <= 1
	}
	if s.dialect == SQLite {
		s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
		go s.checkpoints()
	}
	return s, nil
}

// checkpointEvery is how often the WAL is copied back into the database
// file.
const checkpointEvery = 250 * time.Millisecond

// walRestartFrames is the WAL size (in pages) past which the log is
// started over. A passive checkpoint copies pages back but never empties
// the log while a writer keeps appending, so under steady load the file
// would grow without end (it reached 4.2 GB within 20 minutes of the FULL
// load run).
var walRestartFrames atomic.Int64 // default walRestartDefault

const walRestartDefault = 16384 // 64 MiB of 4 KiB pages

func init() { walRestartFrames.Store(walRestartDefault) }

// busyTimeoutMS is how long a SQLite connection waits for a lock.
const busyTimeoutMS = 10000

// walSizeLimit is SQLite's journal_size_limit: the first commit after the
// log starts over truncates the file to this size.
const walSizeLimit = walRestartDefault * 4096

// idleBeforeTruncate is how long no group may have committed before the
// background checkpoints truncate an oversized log themselves.
const idleBeforeTruncate = time.Second

// checkpoints copies SQLite's write-ahead log into the database file every
// checkpointEvery, beside the writer instead of inside a commit (a passive
// checkpoint waits for nobody and nobody waits for it), until Close, and
// records the log's size for restartLog.
//
// Starting the log over is left to the committer (see restartLog) while
// groups are committing. A TRUNCATE checkpoint here did it before, but it
// holds every writer back while it waits for the readers to leave the
// log, and with thousands of clients reading there is always one: groups
// stalled for hundreds of milliseconds each time (rooms, 15,000 clients,
// 2,500 msgs/s: p99 725 ms with it, 132 ms with no restart at all). Only
// once no group has committed for idleBeforeTruncate does this truncate an
// oversized log, and then it waits for readers for at most 50 ms.
func (s *DB) checkpoints() {
	defer close(s.checkpointsDone)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			var busy, logFrames, done int
			// An error (such as a busy database) is retried at the next tick;
			// the log only grows meanwhile.
			err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done)
			if err == nil {
				s.walFrames.Store(int64(logFrames))
				idle := time.Since(time.Unix(0, s.lastGroup.Load())) > idleBeforeTruncate
				if int64(logFrames) > walRestartFrames.Load() && idle {
					s.truncateLog(ctx)
				}
			}
			cancel()
		}
	}
}

// truncateLog checkpoints the whole log and truncates it, waiting for
// readers for at most 50 ms; it gives up (to try again at the next tick)
// rather than hold writers back longer.
func (s *DB) truncateLog(ctx context.Context) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA busy_timeout = 50`); err != nil {
		return
	}
	var busy, logFrames, done int
	if conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done) == nil && busy == 0 {
		s.walFrames.Store(0)
	}
	// The connection goes back to the pool: it must wait for locks as
	// long as the others again, or be dropped.
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(rctx, `PRAGMA busy_timeout = `+strconv.Itoa(busyTimeoutMS)); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// restartLog runs after a group commits, on the committer's connection
// (writerMu held; SQLite only). Once the log has grown past
// walRestartFrames, it copies what the background checkpoints have not yet
// copied (at most about checkpointEvery's worth of commits). No group
// commits meanwhile, so the
// copy usually reaches the log's end, and then SQLite starts the log over
// at the next group's first write, without waiting for anyone: readers
// that started after the copy read the database file, not the log.
func (s *DB) restartLog(ctx context.Context) {
	if s.dialect != SQLite {
		return
	}
	s.lastGroup.Store(time.Now().UnixNano())
	if s.walFrames.Load() <= walRestartFrames.Load() {
		return
	}
	var busy, logFrames, done int
	if err := s.writer.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done); err != nil {
		return
	}
	if busy == 0 && logFrames == done {
		// The next write starts the log over; if a reader from before the
		// copy still holds it, the next group tries again.
		s.walFrames.Store(0)
	}
}

// Close releases the database. On SQLite it stops the background
// checkpoints and folds the whole log into the database file first.
func (s *DB) Close() error {
	s.closed.Store(true)
	s.closeOnce.Do(func() {
		s.cache.close()
		s.stmts.Range(func(_, st any) bool {
			st.(*sql.Stmt).Close()
			return true
		})
		s.writerMu.Lock()
		if s.writer != nil {
			s.writer.Close()
			s.writer = nil
		}
		s.writerMu.Unlock()
		if s.stopCheckpoints != nil {
			close(s.stopCheckpoints)
			<-s.checkpointsDone
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
			cancel()
		}
	})
	if s.groups != nil {
		s.groups.Close()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// mysqlPool opens a pool of at most conns connections with cfg (timed
// when timing is set).
func mysqlPool(cfg *mysql.Config, timing *Timing, conns int) (*sql.DB, error) {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	if timing != nil {
		connector = timedConnector{Connector: connector, t: timing}
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
}

// beginGroup starts the transaction of a message group. On SQLite it runs
// on a connection kept for the groups, so the committer never queues
// behind requests for one of the pool's connections (in a reconnect storm
// about a thousand handlers wait for them). It does not keep the
// committer's page cache warm, as we had hoped: SQLite still empties it at
// the start of most groups, for a reason we have not found. done must be
// called after the transaction ends.
func (s *DB) beginGroup(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	if s.dialect != SQLite {
		tx, err = s.db.BeginTx(ctx, nil)
		return tx, func() {}, err
	}
	s.writerMu.Lock()
	for attempt := 0; ; attempt++ {
		if s.writer == nil {
			if s.writer, err = s.writerConn(ctx); err != nil {
				s.writerMu.Unlock()
				return nil, nil, err
			}
		}
		tx, err = s.writer.BeginTx(ctx, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrConnDone) && !errors.Is(err, driver.ErrBadConn) {
			s.writerMu.Unlock()
			return nil, nil, err
		}
		// The held connection is gone: take another, once.
		s.writer.Close()
		s.writer = nil
		if attempt == 1 {
			s.writerMu.Unlock()
			return nil, nil, err
		}
	}
	return tx, s.writerMu.Unlock, nil
}

// Page cache sizes on SQLite, in KiB. Each pooled connection fills its
// cache as it reads and keeps it until closed, and the pool's readers are
// mostly idle: with 16 MiB each, the connect burst of 19,000 idle clients
// left about 3 KiB a connection of server RSS in their caches. The
// committer's cache holds a commit group's pages without spilling them to
// the log before the commit.
const (
	readerCacheKiB = 2048
	writerCacheKiB = 16384
)

// writerConn takes a pooled connection for the message groups and gives it
// the committer's page cache. It goes back to the pool only when the store
// closes or the connection has failed.
func (s *DB) writerConn(ctx context.Context) (*sql.Conn, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -`+strconv.Itoa(writerCacheKiB)); err != nil {
		conn.Close() // unchanged: an ordinary pooled connection again
		return nil, err
	}
	return conn, nil
}

// prepared returns the prepared statement of a fixed query, preparing it
// on first use. Run unprepared, every lookup is parsed and planned again:
// on SQLite the parse cost more than the run for the short queries of a
// WebSocket frame (a chat by name, a membership), and the MySQL driver
// prepares, runs and closes a statement, three round trips, for each query
// with arguments. database/sql prepares it on each pooled connection once.
// Only fixed query texts belong here: each text is kept until Close.
func (s *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// rowScanner is a single-row result: *sql.Row, or errRow.
type rowScanner interface{ Scan(dest ...any) error }

// errRow is a row whose query could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queryRow runs a fixed single-row query as a prepared statement.
func (s *DB) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a fixed query as a prepared statement.
func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// exec runs a fixed statement as a prepared statement.
func (s *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error { return s.fail("ping", s.db.PingContext(ctx)) }

// ms converts a time to the stored Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts stored milliseconds back; NULL becomes the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// exists reports whether table has a row with the id. An UPDATE alone cannot
// tell: MySQL counts only the rows it changed, so writing back the stored
// value affects 0 rows of a row that exists.
func exists(ctx context.Context, tx *sql.Tx, table string, id int64) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
