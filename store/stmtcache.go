package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"modernc.org/sqlite"
)

// The SQLite driver parses every statement anew on each Exec and Query: under load
// the parser was the largest single cost of a service (a sixth of orders' CPU).
// database/sql keeps prepared statements only for callers that manage *sql.Stmt
// themselves, and no SQLite driver or pool in Go caches them for ordinary calls,
// so this file adds what pgx does for PostgreSQL: each connection keeps its
// recent statements prepared, keyed by their text, transparently to callers.

// stmtCacheSize bounds the statements kept per connection.
const stmtCacheSize = 128

// sqliteConnector opens SQLite connections that cache their statements.
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{inner: conn, stmts: map[string]*cachedStmt{}}, nil
}

func (c sqliteConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// cachingConn is a SQLite connection that reuses prepared statements. A
// connection is used by one goroutine at a time (database/sql guarantees it), so
// it needs no lock.
type cachingConn struct {
	inner driver.Conn
	stmts map[string]*cachedStmt
	order []string // oldest first, for eviction
}

type cachedStmt struct {
	stmt driver.Stmt
	// busy is set while rows read from the statement are open: a second use of the
	// same text meanwhile gets a statement of its own.
	busy    bool
	evicted bool
}

var (
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

// cacheable reports whether a text is worth keeping: one statement (scripts, such
// as migrations, run once).
func cacheable(query string) bool {
	q := strings.TrimRight(strings.TrimSpace(query), ";")
	return !strings.Contains(q, ";")
}

// cached returns the kept statement for query, preparing and keeping it the first
// time; nil when query is not to be kept or its statement is in use.
func (c *cachingConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if !cacheable(query) {
		return nil, nil
	}
	st, err := c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{stmt: st}
	if len(c.order) >= stmtCacheSize {
		oldest := c.order[0]
		c.order = c.order[1:]
		if old := c.stmts[oldest]; old != nil {
			delete(c.stmts, oldest)
			old.evicted = true
			if !old.busy {
				_ = old.stmt.Close()
			}
		}
	}
	c.stmts[query] = s
	c.order = append(c.order, query)
	return s, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	return s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &releasingRows{Rows: rows, s: s}, nil
}

// releasingRows frees its statement for reuse when closed.
type releasingRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	if r.s.evicted {
		err = errors.Join(err, r.s.stmt.Close())
	}
	return err
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) { //nolint:staticcheck // part of driver.Conn
	return c.inner.Begin() //nolint:staticcheck // the driver's own
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.inner.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.inner.(driver.Validator).IsValid() }

// Close finalizes the kept statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.stmt.Close())
	}
	c.stmts, c.order = nil, nil
	return errors.Join(append(errs, c.inner.Close())...)
}
