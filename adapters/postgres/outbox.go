package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/ports"
)

// outbox implements ports.Outbox: events in outbox, their progress per sink
// in outbox_deliveries.
type outbox struct{ s scope }

const outboxCols = "id, kind, record_id, patient_id, doctor_id, state, attempts, last_error, " +
	"next_attempt_at, created_at, delivered_at"

const deliveryCols = "event_id, sink, state, attempts, last_error, next_attempt_at, since, delivered_at"

func scanEvent(row pgx.Row) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	var next, created int64
	var delivered *int64
	err := row.Scan(&e.ID, &e.Kind, &e.RecordID, &e.PatientID, &e.DoctorID, &e.State, &e.Attempts,
		&e.LastError, &next, &created, &delivered)
	e.NextAttemptAt, e.CreatedAt, e.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	return e, err
}

func scanDelivery(row pgx.Row) (domain.Delivery, error) {
	var d domain.Delivery
	var next, since int64
	var delivered *int64
	err := row.Scan(&d.EventID, &d.Sink, &d.State, &d.Attempts, &d.LastError, &next, &since, &delivered)
	d.NextAttemptAt, d.Since, d.DeliveredAt = fromNanos(next), fromNanos(since), fromNullNanos(delivered)
	return d, err
}

// summarise recomputes the summary of the events whose ids are $1 from
// their deliveries; it runs in the transaction that changed them.
const summarise = `UPDATE outbox SET
    state = CASE
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state = 'dead') THEN 'dead'
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state = 'pending') THEN 'pending'
        ELSE 'delivered' END,
    attempts = (SELECT coalesce(max(d.attempts), 0) FROM outbox_deliveries d WHERE d.event_id = outbox.id),
    last_error = coalesce((SELECT d.sink || ': ' || d.last_error FROM outbox_deliveries d
        WHERE d.event_id = outbox.id AND d.state <> 'delivered' AND d.last_error <> ''
        ORDER BY d.state = 'dead' DESC, d.sink COLLATE "C" LIMIT 1), ''),
    next_attempt_at = coalesce((SELECT min(d.next_attempt_at) FROM outbox_deliveries d
        WHERE d.event_id = outbox.id AND d.state = 'pending'), next_attempt_at),
    delivered_at = CASE
        WHEN EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = outbox.id AND d.state <> 'delivered') THEN NULL
        ELSE (SELECT max(d.delivered_at) FROM outbox_deliveries d WHERE d.event_id = outbox.id) END
WHERE id = ANY($1)`

// addEvent stores an event and its deliveries (given column by column) in
// one statement.
const addEvent = `WITH e AS (
    INSERT INTO outbox (kind, record_id, patient_id, doctor_id, state, attempts, last_error,
                        next_attempt_at, created_at, delivered_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id),
 d AS (
    INSERT INTO outbox_deliveries (` + deliveryCols + `)
    SELECT e.id, x.sink, x.state, x.attempts, x.last_error, x.next_attempt_at, x.since, x.delivered_at
    FROM e, unnest($11::text[], $12::text[], $13::int[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[])
        AS x (sink, state, attempts, last_error, next_attempt_at, since, delivered_at))
SELECT id FROM e`

// Add stores e and its deliveries in one statement; the dispatcher is
// woken only once the transaction commits.
func (r outbox) Add(ctx context.Context, e *domain.OutboxEvent) error {
	if len(e.Deliveries) == 0 {
		return errors.New("postgres: add outbox event: no delivery")
	}
	n := len(e.Deliveries)
	sinks, states, errs := make([]string, n), make([]string, n), make([]string, n)
	attempts, next, since, delivered := make([]int64, n), make([]int64, n), make([]int64, n), make([]*int64, n)
	for i, d := range e.Deliveries {
		sinks[i], states[i], errs[i] = d.Sink, d.State, d.LastError
		attempts[i], next[i], since[i], delivered[i] = int64(d.Attempts), toNanos(d.NextAttemptAt), toNanos(d.Since), toNullNanos(d.DeliveredAt)
	}
	err := r.s.write(ctx, func(t *txn) error {
		var id int64
		if err := t.QueryRow(ctx, addEvent,
			e.Kind, e.RecordID, e.PatientID, e.DoctorID, e.State, e.Attempts, e.LastError,
			toNanos(e.NextAttemptAt), toNanos(e.CreatedAt), toNullNanos(e.DeliveredAt),
			sinks, states, attempts, errs, next, since, delivered).Scan(&id); err != nil {
			return err
		}
		e.ID = id
		for i := range e.Deliveries {
			e.Deliveries[i].EventID = id
		}
		t.changedOutbox()
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: add outbox event: %w", err)
	}
	return nil
}

// Claim leases the due deliveries in one statement. FOR UPDATE SKIP LOCKED
// passes over rows another claimer is leasing at that moment, and the
// lease (claimed_until) keeps them from every claimer until it runs out.
func (r outbox) Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, limit int) ([]domain.OutboxEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return []domain.OutboxEvent{}, nil
	}
	var out []domain.OutboxEvent
	err := r.s.write(ctx, func(t *txn) error {
		var err error
		out, err = collect(ctx, t, scanClaimed,
			`WITH due AS (
			     SELECT event_id FROM outbox_deliveries
			     WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2
			       AND (claimed_until IS NULL OR claimed_until <= $2)
			     ORDER BY next_attempt_at, event_id LIMIT $3
			     FOR UPDATE SKIP LOCKED),
			 claimed AS (
			     UPDATE outbox_deliveries d SET claimed_by = $4, claimed_until = $5
			     FROM due WHERE d.sink = $1 AND d.event_id = due.event_id
			     RETURNING d.event_id, d.sink, d.state, d.attempts, d.last_error, d.next_attempt_at, d.since, d.delivered_at)
			 SELECT e.id, e.kind, e.record_id, e.patient_id, e.doctor_id, e.state, e.attempts, e.last_error,
			        e.next_attempt_at, e.created_at, e.delivered_at,
			        c.event_id, c.sink, c.state, c.attempts, c.last_error, c.next_attempt_at, c.since, c.delivered_at
			 FROM claimed c JOIN outbox e ON e.id = c.event_id
			 ORDER BY c.next_attempt_at, c.event_id`,
			sink, toNanos(now), limit, owner, toNanos(now.Add(lease)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim outbox deliveries: %w", err)
	}
	return out, nil
}

// scanClaimed reads an event joined with one of its deliveries.
func scanClaimed(row pgx.Row) (domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	var d domain.Delivery
	var next, created, dnext, since int64
	var delivered, ddelivered *int64
	err := row.Scan(&e.ID, &e.Kind, &e.RecordID, &e.PatientID, &e.DoctorID, &e.State, &e.Attempts,
		&e.LastError, &next, &created, &delivered,
		&d.EventID, &d.Sink, &d.State, &d.Attempts, &d.LastError, &dnext, &since, &ddelivered)
	e.NextAttemptAt, e.CreatedAt, e.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	d.NextAttemptAt, d.Since, d.DeliveredAt = fromNanos(dnext), fromNanos(since), fromNullNanos(ddelivered)
	e.Deliveries = []domain.Delivery{d}
	return e, err
}

// recordResults writes results given column by column ($1 to $6), by
// owner ($7), and returns the events whose delivery it changed.
const recordResults = `UPDATE outbox_deliveries d
    SET state = r.state, attempts = d.attempts + 1, last_error = r.last_error,
        next_attempt_at = r.next_attempt_at, delivered_at = r.delivered_at, claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
        AS r (event_id, sink, state, last_error, next_attempt_at, delivered_at)
    WHERE d.event_id = r.event_id AND d.sink = r.sink AND d.claimed_by = $7 AND d.state = 'pending'
    RETURNING d.event_id`

// Record writes every result and the summaries of their events in one
// transaction, in one round trip: the results in one statement, the
// summaries (of every event named, which leaves an unchanged one as it
// was) in the next, which sees the first's changes.
func (r outbox) Record(ctx context.Context, owner string, results []domain.DeliveryResult) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	n := len(results)
	ids, sinks, states, errs := make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	next, delivered := make([]int64, n), make([]*int64, n)
	type key struct {
		id   int64
		sink string
	}
	seen := make(map[key]bool, n)
	for i, res := range results {
		ids[i], sinks[i], errs[i], next[i] = res.EventID, res.Sink, truncate(res.Error, maxErrLen), toNanos(res.Next)
		switch res.Outcome {
		case domain.OutcomeDelivered:
			at := toNanos(res.At)
			states[i], delivered[i], next[i] = domain.OutboxDelivered, &at, at
		case domain.OutcomeRetry:
			states[i] = domain.OutboxPending
		case domain.OutcomeDead:
			states[i], next[i] = domain.OutboxDead, toNanos(res.At)
		default:
			return 0, fmt.Errorf("postgres: record outbox deliveries: unknown outcome %q", res.Outcome)
		}
		k := key{res.EventID, res.Sink}
		if seen[k] {
			// One statement would apply only one of them.
			return r.recordEach(ctx, owner, results)
		}
		seen[k] = true
	}
	stored := 0
	err := r.s.write(ctx, func(t *txn) error {
		b := &pgx.Batch{}
		b.Queue(recordResults, ids, sinks, states, errs, next, delivered, owner)
		b.Queue(summarise, ids)
		br := t.SendBatch(ctx, b)
		defer br.Close()
		rows, err := br.Query()
		if err != nil {
			return err
		}
		stored = 0
		for rows.Next() {
			stored++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: record outbox deliveries: %w", err)
	}
	return stored, nil
}

// recordEach writes results one by one, in their order, for a list that
// names a delivery twice.
func (r outbox) recordEach(ctx context.Context, owner string, results []domain.DeliveryResult) (int, error) {
	stored := 0
	err := r.s.write(ctx, func(t *txn) error {
		stored = 0
		var changed []int64
		for _, res := range results {
			var state string
			var delivered *int64
			next := toNanos(res.Next)
			switch res.Outcome {
			case domain.OutcomeDelivered:
				at := toNanos(res.At)
				state, delivered, next = domain.OutboxDelivered, &at, at
			case domain.OutcomeRetry:
				state = domain.OutboxPending
			case domain.OutcomeDead:
				state, next = domain.OutboxDead, toNanos(res.At)
			}
			tag, err := t.Exec(ctx,
				`UPDATE outbox_deliveries SET state = $1, attempts = attempts + 1, last_error = $2,
				        next_attempt_at = $3, delivered_at = $4, claimed_by = NULL, claimed_until = NULL
				 WHERE event_id = $5 AND sink = $6 AND claimed_by = $7 AND state = 'pending'`,
				state, truncate(res.Error, maxErrLen), next, delivered, res.EventID, res.Sink, owner)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				stored++
				changed = append(changed, res.EventID)
			}
		}
		if len(changed) == 0 {
			return nil
		}
		_, err := t.Exec(ctx, summarise, changed)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: record outbox deliveries: %w", err)
	}
	return stored, nil
}

// Release is a no-op for deliveries owner does not hold.
func (r outbox) Release(ctx context.Context, owner, sink string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := r.s.write(ctx, func(t *txn) error {
		_, err := t.Exec(ctx,
			`UPDATE outbox_deliveries SET claimed_by = NULL, claimed_until = NULL
			 WHERE sink = $1 AND claimed_by = $2 AND event_id = ANY($3)`, sink, owner, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release outbox deliveries: %w", err)
	}
	return nil
}

func (r outbox) Get(ctx context.Context, id int64) (domain.OutboxEvent, error) {
	var events []domain.OutboxEvent
	err := r.s.db.readTx(ctx, r.s.tx, func(q querier) error {
		e, err := one(ctx, q, scanEvent, `SELECT `+outboxCols+` FROM outbox WHERE id = $1`, id)
		if err != nil {
			return err
		}
		events = []domain.OutboxEvent{e}
		return withDeliveries(ctx, q, events)
	})
	if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("postgres: outbox event %d: %w", id, err)
	}
	return events[0], nil
}

// withDeliveries loads the deliveries of events in one query.
func withDeliveries(ctx context.Context, q querier, events []domain.OutboxEvent) error {
	if len(events) == 0 {
		return nil
	}
	at := make(map[int64]int, len(events))
	ids := make([]int64, len(events))
	for i, e := range events {
		at[e.ID], ids[i] = i, e.ID
	}
	ds, err := collect(ctx, q, scanDelivery, `SELECT `+deliveryCols+` FROM outbox_deliveries
		WHERE event_id = ANY($1) ORDER BY event_id, sink COLLATE "C" DESC`, ids)
	if err != nil {
		return err
	}
	for _, d := range ds {
		i := at[d.EventID]
		events[i].Deliveries = append(events[i].Deliveries, d)
	}
	return nil
}

// List reads the page and its deliveries in one snapshot.
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
	var out []domain.OutboxEvent
	err := r.s.db.readTx(ctx, r.s.tx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanEvent,
			`SELECT `+outboxCols+` FROM outbox`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT `+w.next(limit(p)),
			w.args...)
		if err != nil {
			return err
		}
		return withDeliveries(ctx, q, out)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list outbox events: %w", err)
	}
	return out, nil
}

// Retry puts back only the dead deliveries, so the retried event repeats
// only the sinks that failed, and keeps last_error for the admin to read.
func (r outbox) Retry(ctx context.Context, id int64, now time.Time) (domain.OutboxEvent, error) {
	var out domain.OutboxEvent
	err := r.s.write(ctx, func(t *txn) error {
		var state string
		if err := t.QueryRow(ctx, `SELECT state FROM outbox WHERE id = $1 FOR UPDATE`, id).Scan(&state); err != nil {
			return notFoundIf(err)
		}
		if state != domain.OutboxDead {
			return domain.Errorf(domain.EConflict, "Only a dead event can be retried; this one is %s.", state)
		}
		if _, err := t.Exec(ctx,
			`UPDATE outbox_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, since = $1,
			        claimed_by = NULL, claimed_until = NULL
			 WHERE event_id = $2 AND state = 'dead'`, toNanos(now), id); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, summarise, []int64{id}); err != nil {
			return err
		}
		t.changedOutbox()
		var err error
		out, err = scope{db: r.s.db, tx: t}.Outbox().Get(ctx, id)
		return err
	})
	var de *domain.Error
	if errors.As(err, &de) {
		return domain.OutboxEvent{}, err
	} else if err != nil {
		return domain.OutboxEvent{}, fmt.Errorf("postgres: retry outbox event %d: %w", id, err)
	}
	return out, nil
}
