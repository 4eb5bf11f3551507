package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the cache: statement texts are few (placeholder
// lists vary with page size, at most a few hundred), but never unbounded.
const maxCachedStmts = 512

// stmtCache prepares each distinct statement once per pool and reuses it:
// parsing SQL was a large share of a list request's CPU. database/sql keeps
// one prepared copy per pooled connection.
type stmtCache struct {
	pool *sql.DB
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
	// wished are statements met inside a transaction before they were
	// prepared. They cannot be prepared there: preparing on the pool needs
	// a free connection, and the write pool's only one is the transaction's.
	// The commit loop prepares them between transactions.
	wished map[string]bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: map[string]*sql.Stmt{}, wished: map[string]bool{}}
}

// lookup returns the prepared statement for query, or nil (and remembers
// the wish) without preparing.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[query]
	c.mu.RUnlock()
	if st == nil {
		c.mu.Lock()
		if len(c.m)+len(c.wished) < maxCachedStmts {
			c.wished[query] = true
		}
		c.mu.Unlock()
	}
	return st
}

// prepareWished prepares the statements wished for; call it only while the
// pool has a free connection.
func (c *stmtCache) prepareWished(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wished {
		delete(c.wished, q)
		if c.m[q] != nil {
			continue
		}
		if st, err := c.pool.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
	}
}

// get returns the prepared statement for query, or nil when the cache is
// full (the caller then runs the query unprepared).
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.RLock()
	st := c.m[query]
	c.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st, nil
	}
	if len(c.m) >= maxCachedStmts {
		return nil, nil
	}
	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

// preparedPool runs queries on a pool through its statement cache.
type preparedPool struct{ c *stmtCache }

func (q preparedPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := q.c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return q.c.pool.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

func (q preparedPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := q.c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return q.c.pool.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (q preparedPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := q.c.get(ctx, query)
	if err != nil || st == nil {
		// An unprepared query reports the same error through its Row.
		return q.c.pool.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// preparedTx runs queries in a transaction through the write pool's cache;
// database/sql reuses the statement already prepared on the transaction's
// connection.
//
// Its statements run with their caller's context no longer cancellable
// (an ended context still refuses the next statement). The transaction is
// shared by every unit of the batch: SQLite interrupted in the middle of a
// write rolls the whole transaction back, failing the other units for one
// caller that left; and a cancellable context costs a watching goroutine
// per statement, in the driver and in database/sql, on the commit loop
// that every write waits for.
type preparedTx struct {
	tx *sql.Tx
	c  *stmtCache
	// bound keeps the statements bound to tx (nil: none kept): the units
	// of a batch run the same few statements over and over, and binding
	// one to the transaction allocates a statement each time.
	bound map[string]*sql.Stmt
}

// unitCtx is ctx for a statement in the shared transaction: its error if
// it has ended, else ctx without its cancellation.
func unitCtx(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

func (q preparedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := q.bound[query]; st != nil {
		return st
	}
	st := q.c.lookup(query)
	if st == nil {
		return nil
	}
	ts := q.tx.StmtContext(ctx, st)
	if q.bound != nil {
		q.bound[query] = ts
	}
	return ts
}

func (q preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, err := unitCtx(ctx)
	if err != nil {
		return nil, err
	}
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, err := unitCtx(ctx)
	if err != nil {
		return nil, err
	}
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	uctx, err := unitCtx(ctx)
	if err != nil {
		// The ended context's error, through a Row as database/sql
		// reports it.
		return q.tx.QueryRowContext(ctx, query, args...)
	}
	if st := q.stmt(uctx, query); st != nil {
		return st.QueryRowContext(uctx, args...)
	}
	return q.tx.QueryRowContext(uctx, query, args...)
}
