package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Counts reads every total in one read transaction, so the overview never
// mixes two moments (an event counted both pending and delivered).
func (db *DB) Counts(ctx context.Context) (ports.Counts, error) {
	c := ports.Counts{
		UsersByRole: map[domain.Role]int64{
			domain.RolePatient: 0, domain.RoleDoctor: 0, domain.RoleAdmin: 0,
		},
		OutboxByState: map[string]int64{
			domain.OutboxPending: 0, domain.OutboxDelivered: 0, domain.OutboxDead: 0,
		},
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ports.Counts{}, fmt.Errorf("sqlite: counts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to lose
	err = countGroups(ctx, tx, `SELECT role, count(*) FROM users GROUP BY role`,
		func(k string, n int64) { c.UsersByRole[domain.Role(k)] = n })
	if err == nil {
		err = countGroups(ctx, tx, `SELECT state, count(*) FROM outbox GROUP BY state`,
			func(k string, n int64) { c.OutboxByState[k] = n })
	}
	if err == nil {
		err = tx.QueryRowContext(ctx,
			`SELECT count(*) FROM users WHERE role = 'DOCTOR' AND approved = 0 AND active = 1`).Scan(&c.PendingDoctors)
	}
	if err == nil {
		err = tx.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM audit`).Scan(&c.AuditEntries)
	}
	if err != nil {
		return ports.Counts{}, fmt.Errorf("sqlite: counts: %w", err)
	}
	return c, nil
}
