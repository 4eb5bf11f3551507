package sqlite

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// Events written before per-sink deliveries keep their progress: what was
// delivered is not repeated, what was pending or dead is still so.
func TestMigration_OutboxDeliveriesFromDoneList(t *testing.T) {
	db := mustOpenRaw(t, t.TempDir()+"/old.db")
	ctx := t.Context()
	p, err := provider(db.write)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 2)
	require.NoError(t, err)
	_, err = db.write.ExecContext(ctx, `INSERT INTO outbox
		(id, kind, record_id, patient_id, doctor_id, state, attempts, last_error, next_attempt_at, created_at, delivered_at, done) VALUES
		(1, 'doctor_assigned', 1, 1, 2, 'delivered', 1, '', 10, 10, 20, 'notification'),  -- both sinks, delivered
		(2, 'doctor_assigned', 1, 1, 2, 'delivered', 1, '', 10, 10, 20, ''),              -- no email sink then
		(3, 'doctor_assigned', 1, 1, 2, 'pending', 2, 'email: 421 later', 30, 10, NULL, 'notification'),
		(4, 'doctor_assigned', 1, 1, 2, 'dead', 8, 'email: 550 gone', 30, 10, NULL, 'notification'),
		(5, 'doctor_assigned', 1, 1, 2, 'pending', 0, '', 10, 10, NULL, '')`)
	require.NoError(t, err)
	require.NoError(t, db.Migrate(ctx))

	states := func(id int64) map[string]string {
		e, err := db.Outbox().Get(ctx, id)
		require.NoError(t, err)
		m := map[string]string{}
		for _, d := range e.Deliveries {
			m[d.Sink] = d.State
		}
		return m
	}
	const del, pen, dead = domain.OutboxDelivered, domain.OutboxPending, domain.OutboxDead
	assert.Equal(t, map[string]string{"notification": del, "email": del}, states(1))
	assert.Equal(t, map[string]string{"notification": del}, states(2))
	assert.Equal(t, map[string]string{"notification": del, "email": pen}, states(3))
	assert.Equal(t, map[string]string{"notification": del, "email": dead}, states(4))
	assert.Equal(t, map[string]string{"notification": pen, "email": pen}, states(5))
	e, err := db.Outbox().Get(ctx, 4)
	require.NoError(t, err)
	assert.Equal(t, domain.OutboxDead, e.State)
	d, _ := e.Delivery(domain.SinkEmail)
	assert.Equal(t, "email: 550 gone", d.LastError)
}
