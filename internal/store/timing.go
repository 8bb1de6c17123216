package store

import (
	"context"
	"database/sql/driver"
	"time"
)

// Observer takes one observation, in seconds; a Prometheus histogram is one.
type Observer interface{ Observe(float64) }

// Timing observes how long the database takes for each statement, by what
// it is: a read (until its first rows are ready), a write, or a commit. The
// store's driver is wrapped to time every statement of every method, the
// transactions' included, without a line in each method.
type Timing struct {
	Query, Exec, Commit Observer
}

// timedConnector opens connections that time their statements.
type timedConnector struct {
	driver.Connector
	t *Timing
}

func (c timedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &timedConn{Conn: conn, t: c.t}, nil
}

// dsnConnector is a connector for a driver that has none (database/sql's
// own dsnConnector is unexported).
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

func since(o Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

// timedConn passes everything through to the driver's connection, timing
// statements. Each optional interface of database/sql is implemented and
// falls back as database/sql would when the driver lacks it (ErrSkip, or
// the answer database/sql assumes).
type timedConn struct {
	driver.Conn
	t *Timing
}

var (
	_ driver.ConnBeginTx        = (*timedConn)(nil)
	_ driver.ConnPrepareContext = (*timedConn)(nil)
	_ driver.ExecerContext      = (*timedConn)(nil)
	_ driver.QueryerContext     = (*timedConn)(nil)
	_ driver.Pinger             = (*timedConn)(nil)
	_ driver.SessionResetter    = (*timedConn)(nil)
	_ driver.Validator          = (*timedConn)(nil)
	_ driver.NamedValueChecker  = (*timedConn)(nil)
	_ driver.StmtExecContext    = (*timedStmt)(nil)
	_ driver.StmtQueryContext   = (*timedStmt)(nil)
	_ driver.NamedValueChecker  = (*timedStmt)(nil)
	//lint:ignore SA1019 passed through for drivers that still use it
	_ driver.ColumnConverter = timedStmtCC{}
)

func (c *timedConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *timedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var (
		st  driver.Stmt
		err error
	)
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	ts := &timedStmt{Stmt: st, conn: c.Conn, t: c.t}
	// database/sql behaves differently with a ColumnConverter: offer one
	// only when the driver's statement has one.
	//lint:ignore SA1019 passed through
	if _, ok := st.(driver.ColumnConverter); ok {
		return timedStmtCC{ts}, nil
	}
	return ts, nil
}

func (c *timedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var (
		tx  driver.Tx
		err error
	)
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		//lint:ignore SA1019 the fallback database/sql itself uses
		tx, err = c.Conn.Begin()
	}
	if err != nil {
		return nil, err
	}
	return timedTx{Tx: tx, t: c.t}, nil
}

func (c *timedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	defer since(c.t.Exec, time.Now())
	return e.ExecContext(ctx, query, args)
}

func (c *timedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	defer since(c.t.Query, time.Now())
	return q.QueryContext(ctx, query, args)
}

func (c *timedConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *timedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *timedConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *timedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// timedTx times the commit: on SQLite with synchronous=FULL that is where
// the fsync is.
type timedTx struct {
	driver.Tx
	t *Timing
}

func (tx timedTx) Commit() error {
	defer since(tx.t.Commit, time.Now())
	return tx.Tx.Commit()
}

type timedStmt struct {
	driver.Stmt
	conn driver.Conn // the driver's connection it was prepared on
	t    *Timing
}

func (s *timedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	defer since(s.t.Exec, time.Now())
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback database/sql itself uses
	return s.Stmt.Exec(values)
}

func (s *timedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	defer since(s.t.Query, time.Now())
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the fallback database/sql itself uses
	return s.Stmt.Query(values)
}

// CheckNamedValue asks the statement, then its connection, as database/sql
// does when the statement has no checker.
func (s *timedStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	if n, ok := s.conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// timedStmtCC is a timedStmt whose driver statement has a ColumnConverter.
type timedStmtCC struct{ *timedStmt }

func (s timedStmtCC) ColumnConverter(idx int) driver.ValueConverter {
	//lint:ignore SA1019 passed through
	return s.Stmt.(driver.ColumnConverter).ColumnConverter(idx)
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, driver.ErrSkip
		}
		out[i] = a.Value
	}
	return out, nil
}
