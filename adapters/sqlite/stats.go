package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OutboxCounts is the number of outbox events per state, for metrics.
func (db *DB) OutboxCounts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := countGroups(ctx, db.read, `SELECT state, count(*) FROM outbox GROUP BY state`,
		func(state string, n int64) { out[state] = n })
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox counts: %w", err)
	}
	return out, nil
}

// OldestPending is the commit time of the oldest pending outbox event,
// zero when none is pending: the backlog's age, for metrics.
func (db *DB) OldestPending(ctx context.Context) (time.Time, error) {
	var n sql.NullInt64
	if err := db.read.QueryRowContext(ctx,
		`SELECT min(created_at) FROM outbox WHERE state = 'pending'`).Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("sqlite: oldest pending event: %w", err)
	}
	if !n.Valid {
		return time.Time{}, nil
	}
	return fromNanos(n.Int64), nil
}

// AuditEntries is the number of audit entries ever written. Entries are
// never deleted and their ids have no gaps, so the head's last id is the
// count, read without a scan.
func (db *DB) AuditEntries(ctx context.Context) (int64, error) {
	var n int64
	if err := db.read.QueryRowContext(ctx, `SELECT last_id FROM audit_head WHERE one = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: audit entries: %w", err)
	}
	return n, nil
}
