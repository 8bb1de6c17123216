package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// OpenAtVersion opens the store applying migrations only up to version, so
// that a test can fill a database as an older release left it and watch the
// next migration carry its rows over.
func OpenAtVersion(ctx context.Context, opts Options, version int) (*DB, error) {
	return open(ctx, opts, version)
}

// SetConsecutiveIDs overrides what the store learnt of the server's
// innodb_autoinc_lock_mode and returns the old value, so that a test can
// take the path that reads the ids of a multi-row INSERT back.
func SetConsecutiveIDs(db *DB, v bool) bool {
	old := db.consecutiveIDs
	db.consecutiveIDs = v
	return old
}

// PageQueries returns the SQL of MessagesBefore and MessagesAfter, for a
// test that checks their plans.
func PageQueries(db *DB) (before, after string) {
	return db.pageSelect() + `WHERE m.chat_id = ? AND m.id < ? AND ` + isMessage + ` ORDER BY m.id DESC LIMIT ?`,
		db.pageSelect() + `WHERE m.chat_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`
}

// SetWALRestartFrames lowers the WAL size at which the background
// checkpoints start the log over, and returns the old value.
func SetWALRestartFrames(n int64) int64 {
	return walRestartFrames.Swap(n)
}

// HoldFreeConns takes every connection the pool could still hand out and
// keeps them until release is called, so that a test can leave the pool
// with none free.
func HoldFreeConns(tb interface{ Fatal(...any) }, db *DB) (release func()) {
	st := db.db.Stats()
	n := st.MaxOpenConnections - st.InUse
	conns := make([]interface{ Close() error }, 0, n)
	for range n {
		c, err := db.db.Conn(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, c := range conns {
				c.Close()
			}
		})
	}
}

// CloseWriter closes the connection held for message groups, as if it had
// gone away.
func CloseWriter(db *DB) {
	db.writerMu.Lock()
	defer db.writerMu.Unlock()
	if db.writer != nil {
		db.writer.Close()
	}
}

// CacheSizes reports PRAGMA cache_size (negative: KiB) on the connection
// held for message groups and on a pooled one (SQLite).
func CacheSizes(ctx context.Context, db *DB) (writer, pooled int, err error) {
	db.writerMu.Lock()
	defer db.writerMu.Unlock()
	if db.writer == nil {
		return 0, 0, errors.New("no connection is held for message groups")
	}
	if err := db.writer.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&writer); err != nil {
		return 0, 0, err
	}
	err = db.db.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&pooled)
	return writer, pooled, err
}

// ApplyMigration applies the one migration numbered version, whatever is
// applied already, as a database that received two branches' migrations
// out of order would have had it.
func ApplyMigration(ctx context.Context, db *DB, version int) error {
	all, err := loadMigrations(db.dialect)
	if err != nil {
		return err
	}
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, m := range all {
		if m.version == version {
			return db.apply(ctx, conn, m)
		}
	}
	return fmt.Errorf("no migration %d", version)
}
