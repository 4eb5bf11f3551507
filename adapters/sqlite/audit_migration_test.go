package sqlite

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// A trail written one row per entry, before lists were grouped, keeps
// verifying after the upgrade, its record and patient filters find the
// same entries, and grouped lists chain on after it.
func TestMigration_AuditGroupsKeepTheTrail(t *testing.T) {
	db := mustOpenRaw(t, t.TempDir()+"/old.db")
	ctx := t.Context()
	p, err := provider(db.write)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 6)
	require.NoError(t, err)
	_, err = db.write.ExecContext(ctx, `UPDATE audit_head SET keyed = 1`)
	require.NoError(t, err)

	old := make([]domain.AuditEntry, 6)
	for i := range old {
		old[i] = domain.AuditEntry{At: t0.Add(time.Duration(i) * time.Second), ActorID: 1, ActorRole: domain.RolePatient,
			Action: domain.ActionRecordList, RecordID: int64(10 + i%3), PatientID: 1, Outcome: domain.OutcomeAllowed}
	}
	h := db.auditHasher()
	head, mac := h.Link(domain.AuditHead{}, old)
	for _, e := range old {
		_, err := db.write.ExecContext(ctx, `INSERT INTO audit (id, at, actor_id, actor_role, action, record_id, patient_id,
			outcome, request_id, remote_addr, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?)`,
			e.ID, toNanos(e.At), e.ActorID, string(e.ActorRole), e.Action, e.RecordID, e.PatientID, e.Outcome, e.PrevHash, e.Hash)
		require.NoError(t, err)
	}
	_, err = db.write.ExecContext(ctx, `UPDATE audit_head SET last_id = ?, last_hash = ?, head_mac = ?`, head.ID, head.Hash, mac)
	require.NoError(t, err)

	require.NoError(t, db.Migrate(ctx))
	c, err := db.Audit().Verify(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, domain.AuditCheck{Entries: 6}, c)
	es, err := db.Audit().List(ctx, ports.AuditFilter{RecordID: 11}, domain.Page{Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []int64{5, 2}, ids(es))
	es, err = db.Audit().List(ctx, ports.AuditFilter{PatientID: 1}, domain.Page{Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 5, 4, 3, 2, 1}, ids(es))

	list := []domain.AuditEntry{old[0], old[0], old[0]}
	for i := range list {
		list[i].At, list[i].RecordID = t0.Add(time.Minute), int64(20+i)
	}
	require.NoError(t, db.Audit().Append(ctx, list...))
	c, err = db.Audit().Verify(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, domain.AuditCheck{Entries: 9}, c)
	es, err = db.Audit().List(ctx, ports.AuditFilter{PatientID: 1}, domain.Page{Limit: 4})
	require.NoError(t, err)
	assert.Equal(t, []int64{9, 8, 7, 6}, ids(es))
}

func ids(es []domain.AuditEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}
