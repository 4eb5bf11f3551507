package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/ports"
)

// keyCount is one row of a GROUP BY count.
type keyCount struct {
	key string
	n   int64
}

func scanKeyCount(row pgx.Row) (keyCount, error) {
	var k keyCount
	return k, row.Scan(&k.key, &k.n)
}

// Counts reads every total in one snapshot, so the overview never mixes
// two moments (an event counted both pending and delivered).
func (db *DB) Counts(ctx context.Context) (ports.Counts, error) {
	c := ports.Counts{
		UsersByRole:   map[domain.Role]int64{domain.RolePatient: 0, domain.RoleDoctor: 0, domain.RoleAdmin: 0},
		OutboxByState: map[string]int64{domain.OutboxPending: 0, domain.OutboxDelivered: 0, domain.OutboxDead: 0},
	}
	err := db.readTx(ctx, nil, func(q querier) error {
		roles, err := collect(ctx, q, scanKeyCount, `SELECT role, count(*) FROM users GROUP BY role`)
		if err != nil {
			return err
		}
		for _, k := range roles {
			c.UsersByRole[domain.Role(k.key)] = k.n
		}
		states, err := collect(ctx, q, scanKeyCount, `SELECT state, count(*) FROM outbox GROUP BY state`)
		if err != nil {
			return err
		}
		for _, k := range states {
			c.OutboxByState[k.key] = k.n
		}
		if err := q.QueryRow(ctx,
			`SELECT count(*) FROM users WHERE role = 'DOCTOR' AND NOT approved AND active`).Scan(&c.PendingDoctors); err != nil {
			return err
		}
		return q.QueryRow(ctx, `SELECT count(*) FROM audit`).Scan(&c.AuditEntries)
	})
	if err != nil {
		return ports.Counts{}, fmt.Errorf("postgres: counts: %w", err)
	}
	return c, nil
}

// OutboxCounts is the number of outbox events per state, for metrics.
func (db *DB) OutboxCounts(ctx context.Context) (map[string]int64, error) {
	states, err := collect(ctx, db.pool, scanKeyCount, `SELECT state, count(*) FROM outbox GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox counts: %w", err)
	}
	out := map[string]int64{}
	for _, k := range states {
		out[k.key] = k.n
	}
	return out, nil
}

// OldestPending is the commit time of the oldest pending outbox event,
// zero when none is pending: the backlog's age, for metrics.
func (db *DB) OldestPending(ctx context.Context) (time.Time, error) {
	var n *int64
	if err := db.pool.QueryRow(ctx, `SELECT min(created_at) FROM outbox WHERE state = 'pending'`).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("postgres: oldest pending event: %w", err)
	}
	if n == nil {
		return time.Time{}, nil
	}
	return fromNanos(*n), nil
}

// AuditEntries is the number of audit entries ever written: entries are
// never deleted and their ids have no gaps, so the head's id is the count.
func (db *DB) AuditEntries(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT last_id FROM audit_head WHERE one = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: audit entries: %w", err)
	}
	return n, nil
}
