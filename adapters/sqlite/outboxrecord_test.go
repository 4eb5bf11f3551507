package sqlite

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// A batch of in-API deliveries, all delivered at one time, is recorded
// in one statement: only the deliveries the owner holds count, and each
// of their events is summarised as delivered; the others stay pending.
func TestOutboxRecord_DeliveredBatch(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	p := mustPatient(t, db, "p")
	var ids []int64
	for i := range 3 {
		_, err := createRecord(ctx, db, p.ID, i)
		require.NoError(t, err)
	}
	held, err := db.Outbox().Claim(ctx, domain.SinkNotification, "A", t0, time.Minute, 2)
	require.NoError(t, err)
	require.Len(t, held, 2)
	all, err := db.Outbox().List(ctx, ports.OutboxFilter{}, domain.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, all, 3)
	var results []domain.DeliveryResult
	for _, e := range all {
		ids = append(ids, e.ID)
		results = append(results, domain.DeliveryResult{EventID: e.ID, Sink: domain.SinkNotification,
			Outcome: domain.OutcomeDelivered, At: t0.Add(time.Second)})
	}
	n, err := db.Outbox().Record(ctx, "A", results)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "only the two deliveries A holds")
	heldIDs := map[int64]bool{held[0].ID: true, held[1].ID: true}
	for _, id := range ids {
		e, err := db.Outbox().Get(ctx, id)
		require.NoError(t, err)
		if heldIDs[id] {
			assert.Equal(t, domain.OutboxDelivered, e.State, "event %d", id)
			assert.Equal(t, 1, e.Attempts)
			require.NotNil(t, e.DeliveredAt)
			assert.True(t, e.DeliveredAt.Equal(t0.Add(time.Second)))
		} else {
			assert.Equal(t, domain.OutboxPending, e.State, "event %d", id)
			assert.Equal(t, 0, e.Attempts)
		}
	}
}
