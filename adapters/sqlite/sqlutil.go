package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"healthrecord/domain"
)

// Times are stored as INTEGER unix nanoseconds in UTC, through these
// helpers only, so they sort as numbers and round-trip exactly.

// toNanos is a time as stored.
func toNanos(t time.Time) int64 { return t.UTC().UnixNano() }

// fromNanos is a stored time.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// toNullNanos stores an optional time (nil: NULL).
func toNullNanos(t *time.Time) any {
	if t == nil {
		return nil
	}
	return toNanos(*t)
}

// fromNullNanos reads an optional time.
func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// nullID stores an optional id (0: NULL).
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// isUnique reports whether err is a UNIQUE constraint violation.
func isUnique(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// notFoundIf maps sql.ErrNoRows to ENotFound.
func notFoundIf(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return domain.NotFound()
	}
	return err
}

// mustChange turns an UPDATE or DELETE that matched nothing into ENotFound.
func mustChange(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return domain.NotFound()
	}
	return nil
}

// insertedID is the id an INSERT gave its row.
func insertedID(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// where collects AND-ed conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

// add appends cond with its arguments.
func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// after adds the keyset condition of a newest-first page: strictly after
// the cursor in (timeCol DESC, idCol DESC) order.
func (w *where) after(p domain.Page, timeCol, idCol string) {
	if p.After != nil {
		w.add("("+timeCol+", "+idCol+") < (?, ?)", toNanos(p.After.CreatedAt), p.After.ID)
	}
}

// String is the WHERE clause, or "" with no condition.
func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// limit is the page size to ask for: the default when unset.
func limit(p domain.Page) int {
	if p.Limit <= 0 {
		return domain.DefaultPageSize
	}
	return p.Limit
}

// placeholders is "?, ?, …" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// boolInt stores a bool as 0 or 1.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queryAll runs query and scans every row with scan, closing the rows
// before it returns (inside a transaction the connection is needed next).
// No row is an empty slice, not nil: a list answers [].
func queryAll[T any](ctx context.Context, q sqlRunner, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, v)
	}
	return out, errors.Join(rows.Err(), rows.Close())
}

// countGroups runs a "SELECT key, count(*) … GROUP BY key" query and hands
// each group to set.
func countGroups(ctx context.Context, q sqlRunner, query string, set func(key string, n int64)) error {
	type group struct {
		key string
		n   int64
	}
	groups, err := queryAll(ctx, q, func(sc scanner) (group, error) {
		var g group
		err := sc.Scan(&g.key, &g.n)
		return g, err
	}, query)
	for _, g := range groups {
		set(g.key, g.n)
	}
	return err
}
