package sqlite

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// Units sharing one commit chain their audit entries from the head the
// previous unit left, and rows and head row are written as it commits; a
// unit rolled back after appending (and after reading the trail, which
// writes what is pending) leaves no gap, no moved head and loses no other
// unit's entry. The chain verifies, and a later append follows on.
func TestAuditHead_SharedCommitChainsAndRollsBack(t *testing.T) {
	db := mustOpenDB(t)
	require.NoError(t, db.Audit().Append(t.Context(), domain.AuditEntry{At: t0, Action: domain.ActionUserRegister, Outcome: domain.OutcomeAllowed}))
	release := holdWriter(t, db)
	before := db.commits.batches.Load()

	const n = 9
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.WithinTx(t.Context(), func(tx ports.Repos) error {
				e := domain.AuditEntry{At: t0, ActorID: int64(i + 1), ActorRole: domain.RolePatient, Action: domain.ActionRecordCreate,
					RecordID: int64(100 + i), PatientID: int64(i + 1), Outcome: domain.OutcomeAllowed, RequestID: fmt.Sprint("req", i)}
				if err := tx.Audit().Append(t.Context(), e); err != nil {
					return err
				}
				if h, err := tx.Audit().Head(t.Context()); err != nil || h.ID < 2 {
					return fmt.Errorf("head inside the transaction: %v %v", h, err)
				}
				if i%3 == 1 {
					// A read of the trail inside the transaction writes
					// what earlier units left, inside this unit's
					// savepoint: rolled back below, and written again.
					got, err := tx.Audit().List(t.Context(), ports.AuditFilter{}, domain.Page{Limit: 1})
					if err != nil || len(got) != 1 || got[0].RequestID != e.RequestID {
						return fmt.Errorf("own entry not listed: %v %v", got, err)
					}
					return errors.New("refused")
				}
				return nil
			})
		})
	}
	require.Eventually(t, func() bool { return len(db.commits.jobs) == n }, eventually, tick)
	release()
	wg.Wait()
	for i, err := range errs {
		if i%3 == 1 {
			assert.EqualError(t, err, "refused")
		} else {
			assert.NoError(t, err)
		}
	}
	assert.Equal(t, int64(1), db.commits.batches.Load()-before, "the nine shared one transaction")

	kept := 1 + n - n/3
	h, err := db.Audit().Head(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(kept), h.ID, "the head row is the last kept entry")
	c, err := db.Audit().Verify(t.Context(), nil)
	require.NoError(t, err)
	assert.True(t, c.OK(), "broken at %d", c.FirstBroken)
	assert.Equal(t, int64(kept), c.Entries)

	next := []domain.AuditEntry{{At: t0, Action: domain.ActionUserRegister, Outcome: domain.OutcomeAllowed}}
	require.NoError(t, db.Audit().Append(t.Context(), next...))
	assert.Equal(t, int64(kept+1), next[0].ID)
	c, err = db.Audit().Verify(t.Context(), &h)
	require.NoError(t, err)
	assert.True(t, c.OK(), "broken at %d", c.FirstBroken)
}
