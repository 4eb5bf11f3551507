package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
)

// outbox implements ports.Outbox.
type outbox struct{ s scope }

// maxErrLen bounds the kept delivery error.
const maxErrLen = 2000

const outboxCols = "id, kind, record_id, patient_id, doctor_id, state, attempts, last_error, " +
	"next_attempt_at, created_at, delivered_at, done"

func scanEvent(sc scanner) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	var next, created int64
	var delivered sql.NullInt64
	var done string
	err := sc.Scan(&e.ID, &e.Kind, &e.RecordID, &e.PatientID, &e.DoctorID, &e.State, &e.Attempts,
		&e.LastError, &next, &created, &delivered, &done)
	e.NextAttemptAt, e.CreatedAt, e.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	if done != "" {
		e.Done = strings.Split(done, ",")
	}
	return e, err
}

// Add stores e; inside a transaction the dispatcher is woken only once it commits.
func (r outbox) Add(ctx context.Context, e *domain.OutboxEvent) error {
	for _, d := range e.Done {
		if err := checkSink(d); err != nil {
			return err
		}
	}
	res, err := r.s.writer().ExecContext(ctx,
		`INSERT INTO outbox (kind, record_id, patient_id, doctor_id, state, attempts, last_error,
		                     next_attempt_at, created_at, delivered_at, done)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Kind, e.RecordID, e.PatientID, e.DoctorID, e.State, e.Attempts, e.LastError,
		toNanos(e.NextAttemptAt), toNanos(e.CreatedAt), toNullNanos(e.DeliveredAt), strings.Join(e.Done, ","))
	if err != nil {
		return fmt.Errorf("sqlite: add outbox event: %w", err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("sqlite: add outbox event: %w", err)
	}
	r.s.outboxChanged()
	return nil
}

// Claim selects and leases in one immediate transaction, so two claimers
// can never both take an event.
func (r outbox) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error) {
	if limit <= 0 {
		return []domain.OutboxEvent{}, nil
	}
	out := []domain.OutboxEvent{}
	err := r.s.atomic(ctx, func(s scope) error {
		ids, err := queryIDs(ctx, s.tx,
			`SELECT id FROM outbox
			 WHERE state = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)
			 ORDER BY next_attempt_at, id LIMIT ?`,
			toNanos(now), toNanos(now), limit)
		if err != nil || len(ids) == 0 {
			return err
		}
		in := placeholders(len(ids))
		args := append([]any{owner, toNanos(now.Add(lease))}, ids...)
		if _, err := s.writer().ExecContext(ctx,
			`UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN (`+in+`)`, args...); err != nil {
			return err
		}
		rows, err := s.reader().QueryContext(ctx,
			`SELECT `+outboxCols+` FROM outbox WHERE id IN (`+in+`) ORDER BY next_attempt_at, id`, ids...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox events: %w", err)
	}
	return out, nil
}

// queryIDs reads one column of ids, closing its rows before returning.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]any, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// checkSink refuses a sink name that cannot be kept in the comma list.
func checkSink(sink string) error {
	if sink == "" || strings.Contains(sink, ",") {
		return fmt.Errorf("sqlite: bad sink name %q", sink)
	}
	return nil
}

// MarkSinkDone appends sink to done unless present, in one statement.
func (r outbox) MarkSinkDone(ctx context.Context, owner string, id int64, sink string) error {
	if err := checkSink(sink); err != nil {
		return err
	}
	res, err := r.s.writer().ExecContext(ctx,
		`UPDATE outbox SET done = CASE
		     WHEN done = '' THEN ?1
		     WHEN instr(',' || done || ',', ',' || ?1 || ',') > 0 THEN done
		     ELSE done || ',' || ?1 END
		 WHERE id = ?2 AND claimed_by = ?3`, sink, id, owner)
	return r.leased(ctx, "mark outbox sink done", id, res, err)
}

func (r outbox) Delivered(ctx context.Context, owner string, id int64, now time.Time) error {
	res, err := r.s.writer().ExecContext(ctx,
		`UPDATE outbox SET state = 'delivered', delivered_at = ?, claimed_by = NULL, claimed_until = NULL
		 WHERE id = ? AND claimed_by = ? AND state = 'pending'`, toNanos(now), id, owner)
	return r.leased(ctx, "mark outbox event delivered", id, res, err)
}

// Failed also releases the lease, so the event is due again at next rather
// than when the lease runs out.
func (r outbox) Failed(ctx context.Context, owner string, id int64, errMsg string, next time.Time, dead bool) error {
	state := domain.OutboxPending
	if dead {
		state = domain.OutboxDead
	}
	res, err := r.s.writer().ExecContext(ctx,
		`UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, state = ?,
		        claimed_by = NULL, claimed_until = NULL
		 WHERE id = ? AND claimed_by = ? AND state = 'pending'`,
		truncate(errMsg, maxErrLen), toNanos(next), state, id, owner)
	return r.leased(ctx, "mark outbox event failed", id, res, err)
}

// Release is a no-op when owner does not hold the lease.
func (r outbox) Release(ctx context.Context, owner string, id int64) error {
	if _, err := r.s.writer().ExecContext(ctx,
		`UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?`,
		id, owner); err != nil {
		return fmt.Errorf("sqlite: release outbox event %d: %w", id, err)
	}
	return nil
}

// leased maps an update guarded by the lease: no row changed means the
// lease was lost (EConflict), or the event does not exist (ENotFound).
func (r outbox) leased(ctx context.Context, what string, id int64, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s %d: %w", what, id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: %s %d: %w", what, id, err)
	} else if n == 1 {
		return nil
	}
	if _, err := r.Get(ctx, id); err != nil {
		return err
	}
	return domain.Errorf(domain.EConflict, "outbox event %d is no longer leased to this dispatcher", id)
}

func (r outbox) Get(ctx context.Context, id int64) (domain.OutboxEvent, error) {
	e, err := scanEvent(r.s.reader().QueryRowContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("sqlite: outbox event %d: %w", id, notFoundIf(err))
	}
	return e, nil
}

func (r outbox) List(ctx context.Context, state string, p domain.Page) ([]domain.OutboxEvent, error) {
	var w where
	if state != "" {
		w.add("state = ?", state)
	}
	w.after(p, "created_at", "id")
	rows, err := r.s.reader().QueryContext(ctx,
		`SELECT `+outboxCols+` FROM outbox`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list outbox events: %w", err)
	}
	defer rows.Close()
	out := []domain.OutboxEvent{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list outbox events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list outbox events: %w", err)
	}
	return out, nil
}

// Retry keeps done, so the retried event repeats only the sinks that
// failed, and keeps last_error for the admin to read.
func (r outbox) Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	err := r.s.atomic(ctx, func(s scope) error {
		var state string
		if err := s.reader().QueryRowContext(ctx, `SELECT state FROM outbox WHERE id = ?`, id).Scan(&state); err != nil {
			return notFoundIf(err)
		}
		if state != domain.OutboxDead {
			return domain.Errorf(domain.EConflict, "Only a dead event can be retried; this one is %s.", state)
		}
		if _, err := s.writer().ExecContext(ctx,
			`UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,
			        claimed_by = NULL, claimed_until = NULL
			 WHERE id = ?`, toNanos(now), id); err != nil {
			return err
		}
		var err error
		if e, err = scanEvent(s.reader().QueryRowContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id)); err != nil {
			return err
		}
		s.outboxChanged()
		return nil
	})
	var de *domain.Error
	if errors.As(err, &de) {
		return domain.OutboxEvent{}, err
	} else if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("sqlite: retry outbox event %d: %w", id, err)
	}
	return e, nil
}

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
