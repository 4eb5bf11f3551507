package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"healthrecord/domain"
)

// Times are stored as BIGINT unix nanoseconds in UTC, through these
// helpers only, so they sort as numbers and round-trip exactly.

// toNanos is a time as stored.
func toNanos(t time.Time) int64 { return t.UTC().UnixNano() }

// fromNanos is a stored time.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// toNullNanos stores an optional time (nil: NULL).
func toNullNanos(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := toNanos(*t)
	return &n
}

// fromNullNanos reads an optional time.
func fromNullNanos(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := fromNanos(*n)
	return &t
}

// nullID stores an optional id (0: NULL).
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// ctxErr makes an error caused by ctx ending say so (errors.Is finds
// ctx.Err()): pgx reports a canceled statement in its own words.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w (%w)", ctx.Err(), err)
}

// notFoundIf maps pgx.ErrNoRows to ENotFound.
func notFoundIf(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.NotFound()
	}
	return err
}

// mustChange turns an UPDATE or DELETE that matched nothing into ENotFound.
func mustChange(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return domain.NotFound()
	}
	return nil
}

// where collects AND-ed conditions and their arguments; each "?" in a
// condition becomes the next $n.
type where struct {
	conds []string
	args  []any
}

// add appends cond with its arguments.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// next is the placeholder of one more argument, a.
func (w *where) next(a any) string {
	w.args = append(w.args, a)
	return fmt.Sprintf("$%d", len(w.args))
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

// collect reads every row with scan, as a non-nil slice.
func collect[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		out = append(out, v)
	}
	return out, ctxErr(ctx, rows.Err())
}

// one reads one row with scan; ENotFound when there is none.
func one[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	v, err := scan(q.QueryRow(ctx, sql, args...))
	return v, ctxErr(ctx, notFoundIf(err))
}

// maxErrLen bounds the kept delivery error.
const maxErrLen = 2000

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
