package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

func TestAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	admin := e.mustAdmin(t)
	p := e.mustPatient(t)
	d := e.mustDoctor(t, false)

	t.Run("others are refused", func(t *testing.T) {
		for _, path := range []string{"/api/admin/users/", "/api/admin/audit/", "/api/admin/outbox/"} {
			assertDetail(t, e.send(t, "GET", path, p.Token, nil), 403, "You do not have permission to perform this action.")
			assertDetail(t, e.send(t, "GET", path, d.Token, nil), 403, "You do not have permission to perform this action.")
		}
		for _, path := range []string{"/api/admin/users/1/approve/", "/api/admin/users/1/deactivate/", "/api/admin/users/1/activate/", "/api/admin/outbox/1/retry/"} {
			assertDetail(t, e.send(t, "POST", path, d.Token, nil), 403, "You do not have permission to perform this action.")
		}
		assertDetail(t, e.send(t, "GET", "/api/admin/users/", "", nil), 401, "Authentication credentials were not provided.")
		assertDetail(t, e.send(t, "POST", "/api/admin/users/"+itoa(d.ID)+"/approve/", d.Token, nil), 403, "You do not have permission to perform this action.")
		u, err := e.db.Users().ByID(ctx, d.ID)
		require.NoError(t, err)
		assert.False(t, u.Approved, "a refused approval changes nothing")
	})

	t.Run("users", func(t *testing.T) {
		r := e.send(t, "GET", "/api/admin/users/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		l := r.List(t)
		require.Len(t, l, 3)
		byName := map[string]map[string]any{}
		for _, u := range l {
			byName[u["username"].(string)] = u
		}
		assert.Equal(t, []string{"email", "id", "is_active", "role", "username"}, keys(byName[p.Name]))
		assert.Equal(t, []string{"approved", "email", "id", "is_active", "role", "username"}, keys(byName[d.Name]))
		assert.Equal(t, "ADMIN", byName[admin.Name]["role"])

		for q, want := range map[string][]string{
			"role=DOCTOR":                {d.Name},
			"role=PATIENT":               {p.Name},
			"role=DOCTOR&approved=false": {d.Name},
			"role=DOCTOR&approved=true":  {},
			"is_active=true&role=ADMIN":  {admin.Name},
		} {
			r := e.send(t, "GET", "/api/admin/users/?"+q, admin.Token, nil)
			require.Equal(t, 200, r.Status, r.String())
			var names []string
			for _, u := range r.List(t) {
				names = append(names, u["username"].(string))
			}
			assert.ElementsMatch(t, want, names, q)
		}
		assertFields(t, e.send(t, "GET", "/api/admin/users/?role=NURSE&approved=maybe", admin.Token, nil),
			map[string][]string{"role": {`"NURSE" is not a valid choice.`}, "approved": {"Must be a valid boolean."}})
	})

	t.Run("approve, deactivate, activate", func(t *testing.T) {
		base := "/api/admin/users/" + itoa(d.ID)
		r := e.send(t, "POST", base+"/approve/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, true, r.Map(t)["approved"])
		assert.Equal(t, true, r.Map(t)["is_active"])

		r = e.send(t, "POST", base+"/deactivate/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, false, r.Map(t)["is_active"])
		assert.Equal(t, 401, e.send(t, "GET", "/api/users/me/", d.Token, nil).Status, "deactivation revokes at once")
		assertDetail(t, e.send(t, "POST", "/api/token/", "", map[string]string{"username": d.Name, "password": testPassword}),
			401, "No active account found with the given credentials")

		r = e.send(t, "POST", base+"/activate", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, true, r.Map(t)["is_active"])
		e.mustSignIn(t, d.Name, testPassword)

		assertDetail(t, e.send(t, "POST", "/api/admin/users/"+itoa(p.ID)+"/approve/", admin.Token, nil), 400, "Only doctors need approval.")
		assertDetail(t, e.send(t, "POST", "/api/admin/users/999999/approve/", admin.Token, nil), 404, "Not found.")
	})

	t.Run("admin cannot read health data", func(t *testing.T) {
		assertDetail(t, e.send(t, "GET", "/api/records/", admin.Token, nil), 403, domain.MsgAdminNoHealthData)
	})

	t.Run("audit", func(t *testing.T) {
		doc := e.mustDoctor(t, true)
		rec := e.mustRecord(t, p, doc.ID)
		require.Equal(t, 200, e.send(t, "GET", "/api/records/"+itoa(rec.ID)+"/", doc.Token, nil).Status)

		r := e.send(t, "GET", "/api/admin/audit/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		all := r.List(t)
		assert.GreaterOrEqual(t, len(all), 3)
		assert.Equal(t, []string{"action", "actor", "actor_role", "at", "id", "outcome", "patient", "record", "remote_addr", "request_id"}, keys(all[0]))

		r = e.send(t, "GET", "/api/admin/audit/?actor="+itoa(doc.ID)+"&action=record.read", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		l := r.List(t)
		require.Len(t, l, 1)
		assert.Equal(t, "record.read", l[0]["action"])
		assert.Equal(t, "DOCTOR", l[0]["actor_role"])

		r = e.send(t, "GET", "/api/admin/audit/?record="+itoa(rec.ID)+"&patient="+itoa(p.ID), admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Len(t, r.List(t), 2)

		r = e.send(t, "GET", "/api/admin/audit/?limit=1", admin.Token, nil)
		assert.Len(t, r.List(t), 1)
		assert.Contains(t, r.Header.Get("Link"), `rel="next"`)

		assertFields(t, e.send(t, "GET", "/api/admin/audit/?actor=me", admin.Token, nil),
			map[string][]string{"actor": {"A valid integer is required."}})
	})

	t.Run("outbox", func(t *testing.T) {
		doc := e.mustDoctor(t, true)
		e.mustPendingEvent(t, e.mustRecord(t, p, 0), doc.ID)
		events, err := e.db.Outbox().List(ctx, ports.OutboxFilter{State: domain.OutboxPending}, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.NotEmpty(t, events)

		r := e.send(t, "GET", "/api/admin/outbox/?state=pending", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		l := r.List(t)
		require.Len(t, l, len(events))
		ev := l[0]
		assert.Equal(t, []string{"attempts", "created_at", "delivered_at", "deliveries", "id", "kind", "last_error", "next_attempt_at", "record", "state"}, keys(ev))
		assert.Equal(t, "pending", ev["state"])
		ds := ev["deliveries"].([]any)
		require.Len(t, ds, 1, "no mailer here: the in-API notification alone")
		d := ds[0].(map[string]any)
		assert.Equal(t, []string{"attempts", "delivered_at", "last_error", "next_attempt_at", "sink", "state"}, keys(d))
		assert.Equal(t, []any{"notification", "pending"}, []any{d["sink"], d["state"]})
		assert.Nil(t, ev["delivered_at"])
		id := int64(ev["id"].(float64))

		mustConflict(t, e, admin, id) // only a dead event can be retried

		// Kill it the way the delivery use case would on a permanent failure.
		now := time.Now().UTC()
		claimed, err := e.db.Outbox().Claim(ctx, domain.SinkNotification, "test", now, time.Minute, 100)
		require.NoError(t, err)
		require.NotEmpty(t, claimed)
		_, err = e.db.Outbox().Record(ctx, "test", []domain.DeliveryResult{{EventID: id, Sink: domain.SinkNotification,
			Outcome: domain.OutcomeDead, Error: "connection refused", At: now}})
		require.NoError(t, err)

		r = e.send(t, "GET", "/api/admin/outbox/?state=dead", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		l = r.List(t)
		require.Len(t, l, 1)
		assert.Equal(t, "notification: connection refused", l[0]["last_error"])
		r = e.send(t, "GET", "/api/admin/outbox/?sink=notification&state=dead", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		require.Len(t, r.List(t), 1)
		r = e.send(t, "GET", "/api/admin/outbox/?sink=email", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		require.Empty(t, r.List(t))

		r = e.send(t, "POST", "/api/admin/outbox/"+itoa(id)+"/retry/", admin.Token, nil)
		require.Equal(t, 200, r.Status, r.String())
		assert.Equal(t, "pending", r.Map(t)["state"])
		assert.Equal(t, float64(0), r.Map(t)["attempts"])

		assertDetail(t, e.send(t, "POST", "/api/admin/outbox/999999/retry/", admin.Token, nil), 404, "Not found.")
		assertFields(t, e.send(t, "GET", "/api/admin/outbox/?state=lost", admin.Token, nil),
			map[string][]string{"state": {`"lost" is not a valid choice.`}})
		assertFields(t, e.send(t, "GET", "/api/admin/outbox/?sink=pigeon", admin.Token, nil),
			map[string][]string{"sink": {`"pigeon" is not a valid choice.`}})
	})
}

// mustConflict retries an event that is not dead: 409 with a {"detail"}
// body worded by the store.
func mustConflict(t *testing.T, e *env, admin user, id int64) {
	t.Helper()
	r := e.send(t, "POST", "/api/admin/outbox/"+itoa(id)+"/retry/", admin.Token, nil)
	require.Equal(t, 409, r.Status, r.String())
	m := r.Map(t)
	require.Len(t, m, 1)
	require.NotEmpty(t, m["detail"])
}
