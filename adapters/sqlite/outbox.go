package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
	"healthrecord/ports"
)

// outbox implements ports.Outbox: events in outbox, their progress per sink
// in outbox_deliveries.
type outbox struct{ in repos }

// OnOutboxCommit registers fn to be called after a transaction that added
// (or re-queued) outbox events has committed, never before, so the
// dispatcher it wakes always finds them. fn runs on the committing
// goroutine and must not block.
func (db *DB) OnOutboxCommit(fn func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onOutbox = append(db.onOutbox, fn)
}

// outboxCommitted calls the OnOutboxCommit functions.
func (db *DB) outboxCommitted() {
	db.mu.Lock()
	fns := append([]func(){}, db.onOutbox...)
	db.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// maxErrLen bounds the kept delivery error.
const maxErrLen = 2000

const outboxCols = "id, kind, record_id, patient_id, doctor_id, state, attempts, last_error, " +
	"next_attempt_at, created_at, delivered_at"

const deliveryCols = "event_id, sink, state, attempts, last_error, next_attempt_at, since, delivered_at"

func scanEvent(sc scanner) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	var next, created int64
	var delivered sql.NullInt64
	err := sc.Scan(&e.ID, &e.Kind, &e.RecordID, &e.PatientID, &e.DoctorID, &e.State, &e.Attempts,
		&e.LastError, &next, &created, &delivered)
	e.NextAttemptAt, e.CreatedAt, e.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	return e, err
}

func scanDelivery(sc scanner) (domain.Delivery, error) {
	var d domain.Delivery
	var next, since int64
	var delivered sql.NullInt64
	err := sc.Scan(&d.EventID, &d.Sink, &d.State, &d.Attempts, &d.LastError, &next, &since, &delivered)
	d.NextAttemptAt, d.Since, d.DeliveredAt = fromNanos(next), fromNanos(since), fromNullNanos(delivered)
	return d, err
}

// summarise recomputes the summary of the events named from their
// deliveries; it runs in the transaction that changed them.
const summarise = `UPDATE outbox SET
    state = CASE
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state = 'dead') THEN 'dead'
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state = 'pending') THEN 'pending'
        ELSE 'delivered' END,
    attempts = (SELECT coalesce(max(d.attempts), 0) FROM outbox_deliveries d WHERE d.event_id = outbox.id),
    last_error = coalesce((SELECT d.sink || ': ' || d.last_error FROM outbox_deliveries d
        WHERE d.event_id = outbox.id AND d.state <> 'delivered' AND d.last_error <> ''
        ORDER BY d.state = 'dead' DESC, d.sink LIMIT 1), ''),
    next_attempt_at = coalesce((SELECT min(d.next_attempt_at) FROM outbox_deliveries d
        WHERE d.event_id = outbox.id AND d.state = 'pending'), next_attempt_at),
    delivered_at = CASE
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state <> 'delivered') THEN NULL
        ELSE (SELECT max(d.delivered_at) FROM outbox_deliveries d WHERE d.event_id = outbox.id) END
WHERE id IN `

// Add stores e and its deliveries; the dispatcher is woken when one is
// pending, inside a transaction only once it commits.
func (r outbox) Add(ctx context.Context, e *domain.OutboxEvent) error {
	if len(e.Deliveries) == 0 {
		return errors.New("sqlite: add outbox event: no delivery")
	}
	err := r.in.atomic(ctx, func(in repos) error {
		id, err := insertedID(in.writes().ExecContext(ctx,
			`INSERT INTO outbox (kind, record_id, patient_id, doctor_id, state, attempts, last_error,
			                     next_attempt_at, created_at, delivered_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Kind, e.RecordID, e.PatientID, e.DoctorID, e.State, e.Attempts, e.LastError,
			toNanos(e.NextAttemptAt), toNanos(e.CreatedAt), toNullNanos(e.DeliveredAt)))
		if err != nil {
			return err
		}
		e.ID = id
		pending := false
		for i := range e.Deliveries {
			d := &e.Deliveries[i]
			d.EventID = e.ID
			if _, err := in.writes().ExecContext(ctx,
				`INSERT INTO outbox_deliveries (`+deliveryCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				d.EventID, d.Sink, d.State, d.Attempts, d.LastError, toNanos(d.NextAttemptAt),
				toNanos(d.Since), toNullNanos(d.DeliveredAt)); err != nil {
				return err
			}
			pending = pending || d.State == domain.OutboxPending
		}
		if pending { // else the dispatcher has nothing to do
			in.outboxChanged()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: add outbox event: %w", err)
	}
	return nil
}

// Claim selects and leases in one immediate transaction, so two claimers
// can never both take a delivery.
func (r outbox) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error) {
	if limit <= 0 {
		return []domain.OutboxEvent{}, nil
	}
	out := []domain.OutboxEvent{}
	err := r.in.atomic(ctx, func(in repos) error {
		ids, err := queryAll(ctx, in.reads(), scanID,
			`SELECT event_id FROM outbox_deliveries
			 WHERE sink = ? AND state = 'pending' AND next_attempt_at <= ?
			   AND (claimed_until IS NULL OR claimed_until <= ?)
			 ORDER BY next_attempt_at, event_id LIMIT ?`,
			sink, toNanos(now), toNanos(now), limit)
		if err != nil || len(ids) == 0 {
			return err
		}
		idList := placeholders(len(ids))
		args := append([]any{owner, toNanos(now.Add(lease)), sink}, ids...)
		if _, err := in.writes().ExecContext(ctx,
			`UPDATE outbox_deliveries SET claimed_by = ?, claimed_until = ?
			 WHERE sink = ? AND event_id IN (`+idList+`)`, args...); err != nil {
			return err
		}
		out, err = queryAll(ctx, in.reads(), scanClaimed,
			`SELECT e.id, e.kind, e.record_id, e.patient_id, e.doctor_id, e.state, e.attempts, e.last_error,
			        e.next_attempt_at, e.created_at, e.delivered_at,
			        d.event_id, d.sink, d.state, d.attempts, d.last_error, d.next_attempt_at, d.since, d.delivered_at
			 FROM outbox_deliveries d JOIN outbox e ON e.id = d.event_id
			 WHERE d.sink = ? AND d.event_id IN (`+idList+`) ORDER BY d.next_attempt_at, d.event_id`,
			append([]any{sink}, ids...)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox deliveries: %w", err)
	}
	return out, nil
}

// scanClaimed reads an event joined with one of its deliveries.
func scanClaimed(sc scanner) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	var d domain.Delivery
	var next, created, dnext, since int64
	var delivered, ddelivered sql.NullInt64
	err := sc.Scan(&e.ID, &e.Kind, &e.RecordID, &e.PatientID, &e.DoctorID, &e.State, &e.Attempts,
		&e.LastError, &next, &created, &delivered,
		&d.EventID, &d.Sink, &d.State, &d.Attempts, &d.LastError, &dnext, &since, &ddelivered)
	e.NextAttemptAt, e.CreatedAt, e.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	d.NextAttemptAt, d.Since, d.DeliveredAt = fromNanos(dnext), fromNanos(since), fromNullNanos(ddelivered)
	e.Deliveries = []domain.Delivery{d}
	return e, err
}

// scanID reads a one-column row of an id, as a statement argument.
func scanID(sc scanner) (any, error) {
	var id int64
	err := sc.Scan(&id)
	return id, err
}

// Record writes every result and the summaries of their events in one
// transaction: a batch of in-API deliveries costs one commit.
func (r outbox) Record(ctx context.Context, owner string, results []domain.DeliveryResult) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	stored := 0
	err := r.in.atomic(ctx, func(in repos) error {
		stored = 0
		var changed []any
		if ids, ok, err := recordDelivered(ctx, in, owner, results); err != nil {
			return err
		} else if ok {
			stored, changed = len(ids), ids
			results = nil // all recorded
		}
		for _, res := range results {
			var state string
			var delivered any
			next := toNanos(res.Next)
			switch res.Outcome {
			case domain.OutcomeDelivered:
				state, delivered, next = domain.OutboxDelivered, toNanos(res.At), toNanos(res.At)
			case domain.OutcomeRetry:
				state = domain.OutboxPending
			case domain.OutcomeDead:
				state, next = domain.OutboxDead, toNanos(res.At)
			default:
				return fmt.Errorf("unknown outcome %q", res.Outcome)
			}
			n, err := rowsChanged(in.writes().ExecContext(ctx,
				`UPDATE outbox_deliveries SET state = ?, attempts = attempts + 1, last_error = ?,
				        next_attempt_at = ?, delivered_at = ?, claimed_by = NULL, claimed_until = NULL
				 WHERE event_id = ? AND sink = ? AND claimed_by = ? AND state = 'pending'`,
				state, truncate(res.Error, maxErrLen), next, delivered, res.EventID, res.Sink, owner))
			if err != nil {
				return err
			}
			if n == 1 {
				stored++
				changed = append(changed, res.EventID)
			}
		}
		if len(changed) == 0 {
			return nil
		}
		_, err := in.writes().ExecContext(ctx, summarise+`(`+placeholders(len(changed))+`)`, changed...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: record outbox deliveries: %w", err)
	}
	return stored, nil
}

// recordDelivered records a batch that was all delivered through one
// sink at one time, as the in-API loop's is, in one statement instead of
// one per delivery (the commit loop runs it, and every write waits for
// that loop); ok is false for any other batch, left to the caller. ids
// are the events whose pending delivery owner held.
func recordDelivered(ctx context.Context, in repos, owner string, results []domain.DeliveryResult) (ids []any, ok bool, err error) {
	first := results[0]
	for _, res := range results {
		if res.Outcome != domain.OutcomeDelivered || res.Error != "" || res.Sink != first.Sink || !res.At.Equal(first.At) {
			return nil, false, nil
		}
	}
	at := toNanos(first.At)
	args := []any{domain.OutboxDelivered, at, at, first.Sink, owner}
	for _, res := range results {
		args = append(args, res.EventID)
	}
	ids, err = queryAll(ctx, in.reads(), scanID,
		`UPDATE outbox_deliveries SET state = ?, attempts = attempts + 1, last_error = '',
		        next_attempt_at = ?, delivered_at = ?, claimed_by = NULL, claimed_until = NULL
		 WHERE sink = ? AND claimed_by = ? AND state = 'pending' AND event_id IN (`+placeholders(len(results))+`)
		 RETURNING event_id`, args...)
	return ids, true, err
}

func rowsChanged(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Release is a no-op for deliveries owner does not hold.
func (r outbox) Release(ctx context.Context, owner, sink string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{sink, owner}
	for _, id := range ids {
		args = append(args, id)
	}
	if _, err := r.in.writes().ExecContext(ctx,
		`UPDATE outbox_deliveries SET claimed_by = NULL, claimed_until = NULL
		 WHERE sink = ? AND claimed_by = ? AND event_id IN (`+placeholders(len(ids))+`)`, args...); err != nil {
		return fmt.Errorf("sqlite: release outbox deliveries: %w", err)
	}
	return nil
}

func (r outbox) Get(ctx context.Context, id int64) (domain.OutboxEvent, error) {
	e, err := scanEvent(r.in.reads().QueryRowContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("sqlite: outbox event %d: %w", id, notFoundIf(err))
	}
	events := []domain.OutboxEvent{e}
	if err := r.withDeliveries(ctx, r.in.reads(), events); err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("sqlite: outbox event %d: %w", id, err)
	}
	return events[0], nil
}

// withDeliveries loads the deliveries of events in one query.
func (r outbox) withDeliveries(ctx context.Context, q sqlRunner, events []domain.OutboxEvent) error {
	if len(events) == 0 {
		return nil
	}
	at := make(map[int64]int, len(events))
	args := make([]any, len(events))
	for i, e := range events {
		at[e.ID], args[i] = i, e.ID
	}
	ds, err := queryAll(ctx, q, scanDelivery, `SELECT `+deliveryCols+` FROM outbox_deliveries
		WHERE event_id IN (`+placeholders(len(events))+`) ORDER BY event_id, sink DESC`, args...)
	for _, d := range ds {
		i := at[d.EventID]
		events[i].Deliveries = append(events[i].Deliveries, d)
	}
	return err
}

func (r outbox) List(ctx context.Context, f ports.OutboxFilter, p domain.Page) ([]domain.OutboxEvent, error) {
	var w where
	switch {
	case f.Sink != "" && f.State != "":
		w.add("EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.sink = ? AND d.state = ?)", f.Sink, f.State)
	case f.Sink != "":
		w.add("EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.sink = ?)", f.Sink)
	case f.State != "":
		w.add("state = ?", f.State)
	}
	w.after(p, "created_at", "id")
	q := r.in.reads()
	out, err := queryAll(ctx, q, scanEvent,
		`SELECT `+outboxCols+` FROM outbox`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err == nil {
		err = r.withDeliveries(ctx, q, out)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list outbox events: %w", err)
	}
	return out, nil
}

// Retry puts back only the dead deliveries, so the retried event repeats
// only the sinks that failed, and keeps last_error for the admin to read.
func (r outbox) Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	err := r.in.atomic(ctx, func(in repos) error {
		var state string
		if err := in.reads().QueryRowContext(ctx, `SELECT state FROM outbox WHERE id = ?`, id).Scan(&state); err != nil {
			return notFoundIf(err)
		}
		if state != domain.OutboxDead {
			return domain.Errorf(domain.EConflict, "Only a dead event can be retried; this one is %s.", state)
		}
		if _, err := in.writes().ExecContext(ctx,
			`UPDATE outbox_deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, since = ?,
			        claimed_by = NULL, claimed_until = NULL
			 WHERE event_id = ? AND state = 'dead'`, toNanos(now), toNanos(now), id); err != nil {
			return err
		}
		if _, err := in.writes().ExecContext(ctx, summarise+`(?)`, id); err != nil {
			return err
		}
		in.outboxChanged()
		return nil
	})
	var de *domain.Error
	if errors.As(err, &de) {
		return domain.OutboxEvent{}, err
	} else if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("sqlite: retry outbox event %d: %w", id, err)
	}
	return r.Get(ctx, id)
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
