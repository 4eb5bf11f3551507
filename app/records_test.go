package app

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func ptr(s string) *string { return &s }

// cast is the usual set of accounts around one assigned record.
type cast struct {
	owner, otherPatient, doctor, otherDoctor, pendingDoctor, goneDoctor, admin domain.User
	record                                                                     domain.Record // owner's, assigned to doctor
	unassigned                                                                 domain.Record // owner's, no doctor
}

func newCast(t *testing.T, e *testEnv) cast {
	t.Helper()
	c := cast{
		owner:         e.mustUser(t, "alice", domain.RolePatient),
		otherPatient:  e.mustUser(t, "mallory", domain.RolePatient),
		doctor:        e.mustUser(t, "drhouse", domain.RoleDoctor),
		otherDoctor:   e.mustUser(t, "drwilson", domain.RoleDoctor),
		pendingDoctor: e.mustUser(t, "drnew", domain.RoleDoctor, unapproved),
		goneDoctor:    e.mustUser(t, "drgone", domain.RoleDoctor, inactive),
		admin:         e.mustUser(t, "root", domain.RoleAdmin),
	}
	c.record = e.mustRecord(t, c.owner, c.doctor)
	c.unassigned = e.mustRecord(t, c.owner, domain.User{})
	return c
}

// flushed writes buffered audit entries and returns all of them.
func (e *testEnv) flushed(t *testing.T) []domain.AuditEntry {
	t.Helper()
	require.NoError(t, e.app.audit.Flush(ctx))
	return e.auditEntries()
}

// auditShape is the part of an audit entry a test cares about.
type auditShape struct {
	Actor   int64
	Action  string
	Record  int64
	Patient int64
	Outcome string
}

func shapes(entries []domain.AuditEntry) []auditShape {
	var out []auditShape
	for _, e := range entries {
		out = append(out, auditShape{e.ActorID, e.Action, e.RecordID, e.PatientID, e.Outcome})
	}
	return out
}

func TestCreateRecord(t *testing.T) {
	t.Run("with_doctor_writes_outbox_event_in_tx", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		now := e.clock.Now()
		r, err := e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{
			Title: ptr("Knee"), Content: ptr("Hurts when running"), SetDoctor: true, DoctorID: c.doctor.ID,
		})
		require.NoError(t, err)
		assert.Equal(t, domain.Record{ID: r.ID, PatientID: c.owner.ID, DoctorID: c.doctor.ID, Title: "Knee",
			Content: "Hurts when running", CreatedAt: now, UpdatedAt: now, Comments: []domain.Comment{}}, r)
		stored, ok := e.record(t, r.ID)
		require.True(t, ok)
		assert.Equal(t, "Knee", stored.Title)

		events := e.outboxEvents()
		require.Len(t, events, 1)
		for id, ev := range events {
			assert.Equal(t, domain.OutboxEvent{ID: id, Kind: domain.KindDoctorAssigned, RecordID: r.ID, PatientID: c.owner.ID,
				DoctorID: c.doctor.ID, State: domain.OutboxDelivered, Attempts: 1, NextAttemptAt: now, CreatedAt: now, DeliveredAt: &now,
				Deliveries: []domain.Delivery{{EventID: id, Sink: domain.SinkNotification, State: domain.OutboxDelivered, Attempts: 1,
					NextAttemptAt: now, DeliveredAt: &now, Since: now}},
			}, ev, "no mailer: the in-API notification alone, delivered in the same transaction")
			assert.True(t, e.db.inTx(t, "Outbox.Add", 0), "written through the transaction")
			notes := e.db.rows().Notifications
			require.Len(t, notes, 1)
			for nid, n := range notes {
				assert.Equal(t, domain.Notification{ID: nid, UserID: c.doctor.ID, Kind: domain.KindDoctorAssigned,
					RecordID: r.ID, PatientID: c.owner.ID, EventID: id, CreatedAt: now}, n)
			}
			assert.True(t, e.db.inTx(t, "Notifications.Create", 0), "delivered through the transaction")
		}

		entries := e.auditEntries()
		require.Len(t, entries, 1, "a change is audited at once, not buffered")
		assert.Equal(t, []auditShape{{c.owner.ID, domain.ActionRecordCreate, r.ID, c.owner.ID, domain.OutcomeAllowed}}, shapes(entries))
		assert.Equal(t, "req-alice", entries[0].RequestID)
		assert.Equal(t, "192.0.2.1", entries[0].RemoteAddr)
		assert.Equal(t, domain.RolePatient, entries[0].ActorRole)
		assert.Equal(t, now, entries[0].At)
		assert.True(t, e.db.inTx(t, "Audit.Append", 0))
	})

	t.Run("without_doctor_no_event", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		for _, change := range []domain.RecordChange{
			{Title: ptr("t"), Content: ptr("c")},
			{Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: 0},
		} {
			r, err := e.app.CreateRecord(ctx, actorOf(c.owner), change)
			require.NoError(t, err)
			assert.Zero(t, r.DoctorID)
		}
		assert.Empty(t, e.outboxEvents())
	})

	refused := []struct {
		name  string
		actor func(c cast) domain.User
		msg   string
	}{
		{"doctor", func(c cast) domain.User { return c.doctor }, "Only patients can create health records."},
		{"admin", func(c cast) domain.User { return c.admin }, domain.MsgAdminNoHealthData},
	}
	for _, tt := range refused {
		t.Run("forbidden/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			_, err := e.app.CreateRecord(ctx, actorOf(tt.actor(c)), domain.RecordChange{Title: ptr("t"), Content: ptr("c")})
			requireCode(t, err, domain.EForbidden, tt.msg)
			assert.Len(t, e.db.rows().Records, 2)
			assert.Empty(t, e.auditEntries())
		})
	}

	badDoctors := []struct {
		name string
		id   func(c cast) int64
	}{
		{"missing", func(cast) int64 { return 9999 }},
		{"a_patient", func(c cast) int64 { return c.otherPatient.ID }},
		{"unapproved_doctor", func(c cast) int64 { return c.pendingDoctor.ID }},
		{"inactive_doctor", func(c cast) int64 { return c.goneDoctor.ID }},
		{"admin", func(c cast) int64 { return c.admin.ID }},
	}
	for _, tt := range badDoctors {
		t.Run("bad_doctor/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			id := tt.id(c)
			_, err := e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: id})
			requireFields(t, err, map[string][]string{"doctor": {`Invalid pk "` + strconv.FormatInt(id, 10) + `" - object does not exist.`}})
			assert.Len(t, e.db.rows().Records, 2)
			assert.Empty(t, e.outboxEvents())
		})
	}

	t.Run("invalid_fields", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{Title: ptr(" ")})
		requireFields(t, err, map[string][]string{"title": {domain.MsgBlank}, "content": {domain.MsgRequired}})
	})

	// Whatever fails inside the transaction, neither the record nor its
	// outbox event remains.
	rollbacks := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"audit_append_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Audit.Append") }},
		{"outbox_add_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Outbox.Add") }},
		{"notification_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Notifications.Create") }},
		{"record_create_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Records.Create") }},
		{"doctor_lookup_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Users.ByID") }},
		{"commit_fails", func(e *testEnv) { e.db.CommitErr = errBoom }},
	}
	for _, tt := range rollbacks {
		t.Run("rollback/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			tt.setup(e)
			r, err := e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{
				Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: c.doctor.ID,
			})
			assert.ErrorIs(t, err, errBoom)
			assert.Zero(t, r)
			assert.Len(t, e.db.rows().Records, 2)
			assert.Empty(t, e.outboxEvents())
			assert.Empty(t, e.db.rows().Notifications, "no notification without its assignment")
			assert.Empty(t, e.auditEntries())
		})
	}

	t.Run("with_mailer_the_email_stays_pending", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.app.mailer = &fakeMailer{send: func(context.Context, domain.Email) error { return nil }}
		c := newCast(t, e)
		now := e.clock.Now()
		_, err := e.app.CreateRecord(ctx, actorOf(c.owner), domain.RecordChange{
			Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: c.doctor.ID,
		})
		require.NoError(t, err)
		events := e.outboxEvents()
		require.Len(t, events, 1)
		for _, ev := range events {
			assert.Equal(t, domain.OutboxPending, ev.State, "pending while its email is")
			assert.Nil(t, ev.DeliveredAt)
			in, _ := ev.Delivery(domain.SinkNotification)
			assert.Equal(t, domain.OutboxDelivered, in.State)
			email, _ := ev.Delivery(domain.SinkEmail)
			assert.Equal(t, domain.Delivery{EventID: ev.ID, Sink: domain.SinkEmail, State: domain.OutboxPending,
				NextAttemptAt: now, Since: now}, email)
		}
		assert.Len(t, e.db.rows().Notifications, 1)
	})
}

func TestListRecords(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	mine := e.mustRecord(t, c.owner, c.otherDoctor)
	theirs := e.mustRecord(t, c.otherPatient, c.doctor)

	tests := []struct {
		name  string
		actor domain.User
		want  []domain.Record
	}{
		{"owner_sees_own_newest_first", c.owner, []domain.Record{mine, c.unassigned, c.record}},
		{"other_patient", c.otherPatient, []domain.Record{theirs}},
		{"doctor_sees_assigned", c.doctor, []domain.Record{theirs, c.record}},
		{"other_doctor", c.otherDoctor, []domain.Record{mine}},
		{"doctor_with_nothing", c.pendingDoctor, []domain.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := e.app.ListRecords(ctx, actorOf(tt.actor), domain.Page{})
			require.NoError(t, err)
			assert.Nil(t, next)
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("paginated", func(t *testing.T) {
		got, next, err := e.app.ListRecords(ctx, actorOf(c.owner), domain.Page{Limit: 2})
		require.NoError(t, err)
		assert.Equal(t, []domain.Record{mine, c.unassigned}, got)
		require.NotNil(t, next)
		got, next, err = e.app.ListRecords(ctx, actorOf(c.owner), domain.Page{Limit: 2, After: next})
		require.NoError(t, err)
		assert.Equal(t, []domain.Record{c.record}, got)
		assert.Nil(t, next)
	})

	t.Run("admin_forbidden_and_audited", func(t *testing.T) {
		before := len(e.flushed(t))
		_, _, err := e.app.ListRecords(ctx, actorOf(c.admin), domain.Page{})
		requireCode(t, err, domain.EForbidden, domain.MsgAdminNoHealthData)
		entries := e.flushed(t)
		require.Len(t, entries, before+1)
		assert.Equal(t, auditShape{c.admin.ID, domain.ActionRecordList, 0, 0, domain.OutcomeDenied}, shapes(entries[before:])[0])
	})

	// A list names what it showed: one entry per record on the page, so
	// each record's access log shows the list.
	t.Run("lists_are_audited_per_record_after_a_flush", func(t *testing.T) {
		before := len(e.flushed(t))
		_, _, err := e.app.ListRecords(ctx, actorOf(c.doctor), domain.Page{})
		require.NoError(t, err)
		assert.Len(t, e.auditEntries(), before, "buffered, not yet written")
		entries := e.flushed(t)
		assert.Equal(t, []auditShape{
			{c.doctor.ID, domain.ActionRecordList, theirs.ID, c.otherPatient.ID, domain.OutcomeAllowed},
			{c.doctor.ID, domain.ActionRecordList, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
		}, shapes(entries[before:]))
	})
	t.Run("only_the_page_is_audited", func(t *testing.T) {
		before := len(e.flushed(t))
		_, _, err := e.app.ListRecords(ctx, actorOf(c.owner), domain.Page{Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, []auditShape{{c.owner.ID, domain.ActionRecordList, mine.ID, c.owner.ID, domain.OutcomeAllowed}},
			shapes(e.flushed(t)[before:]))
	})
	t.Run("an_empty_list_is_still_on_file", func(t *testing.T) {
		before := len(e.flushed(t))
		_, _, err := e.app.ListRecords(ctx, actorOf(c.pendingDoctor), domain.Page{})
		require.NoError(t, err)
		assert.Equal(t, []auditShape{{c.pendingDoctor.ID, domain.ActionRecordList, 0, 0, domain.OutcomeAllowed}},
			shapes(e.flushed(t)[before:]))
	})

	t.Run("store_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Records.List")
		defer func() { e.db.Fail = nil }()
		_, _, err := e.app.ListRecords(ctx, actorOf(c.owner), domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
}

func TestGetRecord(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	comment := e.mustComment(t, c.record, c.doctor)
	withComments := c.record
	withComments.Comments = []domain.Comment{comment}

	tests := []struct {
		name    string
		actor   domain.User
		code    domain.Code
		outcome string
	}{
		{"owner", c.owner, "", domain.OutcomeAllowed},
		{"assigned_doctor", c.doctor, "", domain.OutcomeAllowed},
		{"other_patient", c.otherPatient, domain.ENotFound, domain.OutcomeDenied},
		{"other_doctor", c.otherDoctor, domain.ENotFound, domain.OutcomeDenied},
		{"admin", c.admin, domain.EForbidden, domain.OutcomeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.flushed(t))
			got, err := e.app.GetRecord(ctx, actorOf(tt.actor), c.record.ID)
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, withComments, got)
			} else {
				requireCode(t, err, tt.code, "")
				assert.Zero(t, got)
			}
			entries := e.flushed(t)
			assert.Equal(t, []auditShape{{tt.actor.ID, domain.ActionRecordRead, c.record.ID, c.owner.ID, tt.outcome}}, shapes(entries[before:]))
		})
	}

	missing := []struct {
		name  string
		actor domain.User
		code  domain.Code
	}{
		{"patient", c.owner, domain.ENotFound},
		{"doctor", c.doctor, domain.ENotFound},
		{"admin", c.admin, domain.EForbidden},
	}
	for _, tt := range missing {
		t.Run("missing/"+tt.name, func(t *testing.T) {
			before := len(e.flushed(t))
			_, err := e.app.GetRecord(ctx, actorOf(tt.actor), 9999)
			requireCode(t, err, tt.code, "")
			assert.Len(t, e.flushed(t), before, "nothing to audit")
		})
	}

	t.Run("store_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Records.Get")
		defer func() { e.db.Fail = nil }()
		_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		assert.ErrorIs(t, err, errBoom)
	})
}

func TestUpdateRecord(t *testing.T) {
	type result struct {
		title, content string
		doctor         func(c cast) int64
		event          bool // an assignment event for the new doctor
	}
	keepDoctor := func(c cast) int64 { return c.doctor.ID }
	tests := []struct {
		name   string
		change func(c cast) domain.RecordChange
		full   bool
		want   result
	}{
		{"patch_title", func(cast) domain.RecordChange { return domain.RecordChange{Title: ptr("New title")} }, false,
			result{"New title", "Content of alice", keepDoctor, false}},
		{"put_full", func(cast) domain.RecordChange { return domain.RecordChange{Title: ptr("T"), Content: ptr("C")} }, true,
			result{"T", "C", keepDoctor, false}},
		{"change_doctor", func(c cast) domain.RecordChange {
			return domain.RecordChange{SetDoctor: true, DoctorID: c.otherDoctor.ID}
		}, false, result{"Title of alice", "Content of alice", func(c cast) int64 { return c.otherDoctor.ID }, true}},
		{"same_doctor", func(c cast) domain.RecordChange { return domain.RecordChange{SetDoctor: true, DoctorID: c.doctor.ID} }, false,
			result{"Title of alice", "Content of alice", keepDoctor, false}},
		{"unassign", func(cast) domain.RecordChange { return domain.RecordChange{SetDoctor: true} }, false,
			result{"Title of alice", "Content of alice", func(cast) int64 { return 0 }, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			e.clock.Advance(time.Hour)
			now := e.clock.Now()
			got, err := e.app.UpdateRecord(ctx, actorOf(c.owner), c.record.ID, tt.change(c), tt.full)
			require.NoError(t, err)
			want := c.record
			want.Title, want.Content, want.DoctorID, want.UpdatedAt = tt.want.title, tt.want.content, tt.want.doctor(c), now
			assert.Equal(t, want, got)
			stored, _ := e.record(t, c.record.ID)
			want.Comments = nil
			assert.Equal(t, want, stored)

			events := e.outboxEvents()
			if tt.want.event {
				require.Len(t, events, 1)
				for _, ev := range events {
					assert.Equal(t, want.DoctorID, ev.DoctorID)
					assert.Equal(t, c.record.ID, ev.RecordID)
					assert.Equal(t, c.owner.ID, ev.PatientID)
					assert.True(t, e.db.inTx(t, "Outbox.Add", 0))
					assert.Equal(t, domain.OutboxDelivered, ev.State, "its notification delivered with it")
					assert.True(t, e.db.inTx(t, "Notifications.Create", 0))
				}
				assert.Len(t, e.db.rows().Notifications, 1)
			} else {
				assert.Empty(t, events)
				assert.Empty(t, e.db.rows().Notifications)
			}
			assert.Equal(t, []auditShape{{c.owner.ID, domain.ActionRecordUpdate, c.record.ID, c.owner.ID, domain.OutcomeAllowed}},
				shapes(e.auditEntries()))
			assert.True(t, e.db.inTx(t, "Audit.Append", 0))
		})
	}

	t.Run("assign_unassigned", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		got, err := e.app.UpdateRecord(ctx, actorOf(c.owner), c.unassigned.ID, domain.RecordChange{SetDoctor: true, DoctorID: c.doctor.ID}, false)
		require.NoError(t, err)
		assert.Equal(t, c.doctor.ID, got.DoctorID)
		assert.Len(t, e.outboxEvents(), 1)
	})

	t.Run("put_back_with_deactivated_doctor", func(t *testing.T) {
		// The doctor is not checked again unless it changes, so a client
		// may PUT back what it read.
		e := newEnv(t, Config{})
		c := newCast(t, e)
		r := e.mustRecord(t, c.owner, c.goneDoctor)
		got, err := e.app.UpdateRecord(ctx, actorOf(c.owner), r.ID, domain.RecordChange{
			Title: ptr(r.Title), Content: ptr("edited"), SetDoctor: true, DoctorID: c.goneDoctor.ID,
		}, true)
		require.NoError(t, err)
		assert.Equal(t, "edited", got.Content)
		assert.Empty(t, e.outboxEvents())
	})

	badDoctors := []struct {
		name string
		id   func(c cast) int64
	}{
		{"missing", func(cast) int64 { return 4242 }},
		{"unapproved", func(c cast) int64 { return c.pendingDoctor.ID }},
		{"inactive", func(c cast) int64 { return c.goneDoctor.ID }},
		{"patient", func(c cast) int64 { return c.otherPatient.ID }},
	}
	for _, tt := range badDoctors {
		t.Run("bad_doctor/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			id := tt.id(c)
			_, err := e.app.UpdateRecord(ctx, actorOf(c.owner), c.record.ID, domain.RecordChange{Title: ptr("x"), SetDoctor: true, DoctorID: id}, false)
			requireFields(t, err, map[string][]string{"doctor": {`Invalid pk "` + strconv.FormatInt(id, 10) + `" - object does not exist.`}})
			stored, _ := e.record(t, c.record.ID)
			assert.Equal(t, c.record.Title, stored.Title)
			assert.Equal(t, c.doctor.ID, stored.DoctorID)
			assert.Empty(t, e.outboxEvents())
			assert.Empty(t, e.auditEntries())
		})
	}

	t.Run("invalid_change", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		_, err := e.app.UpdateRecord(ctx, actorOf(c.owner), c.record.ID, domain.RecordChange{Title: ptr("only title")}, true)
		requireFields(t, err, map[string][]string{"content": {domain.MsgRequired}})
		stored, _ := e.record(t, c.record.ID)
		assert.Equal(t, c.record.Title, stored.Title)
		assert.Empty(t, e.auditEntries())
	})

	refused := []struct {
		name  string
		actor func(c cast) domain.User
		code  domain.Code
		msg   string
	}{
		{"assigned_doctor", func(c cast) domain.User { return c.doctor }, domain.EForbidden, domain.MsgOnlyOwnerChanges},
		{"other_patient", func(c cast) domain.User { return c.otherPatient }, domain.ENotFound, domain.MsgNotFound},
		{"other_doctor", func(c cast) domain.User { return c.otherDoctor }, domain.ENotFound, domain.MsgNotFound},
		{"admin", func(c cast) domain.User { return c.admin }, domain.EForbidden, domain.MsgAdminNoHealthData},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			actor := tt.actor(c)
			_, err := e.app.UpdateRecord(ctx, actorOf(actor), c.record.ID, domain.RecordChange{Title: ptr("hijacked"), SetDoctor: true, DoctorID: c.otherDoctor.ID}, false)
			requireCode(t, err, tt.code, tt.msg)
			stored, _ := e.record(t, c.record.ID)
			assert.Equal(t, c.record.Title, stored.Title)
			assert.Empty(t, e.outboxEvents())
			// The refusal is audited at once, outside the rolled-back tx.
			entries := e.auditEntries()
			assert.Equal(t, []auditShape{{actor.ID, domain.ActionRecordUpdate, c.record.ID, c.owner.ID, domain.OutcomeDenied}}, shapes(entries))
			assert.False(t, e.db.inTx(t, "Audit.Append", 0))
		})
	}

	missing := []struct {
		name  string
		actor func(c cast) domain.User
		code  domain.Code
	}{
		{"patient", func(c cast) domain.User { return c.owner }, domain.ENotFound},
		{"admin", func(c cast) domain.User { return c.admin }, domain.EForbidden},
	}
	for _, tt := range missing {
		t.Run("missing/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			_, err := e.app.UpdateRecord(ctx, actorOf(tt.actor(c)), 9999, domain.RecordChange{Title: ptr("x")}, false)
			requireCode(t, err, tt.code, "")
			assert.Empty(t, e.auditEntries())
		})
	}

	rollbacks := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"commit_fails", func(e *testEnv) { e.db.CommitErr = errBoom }},
		{"audit_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Audit.Append") }},
		{"outbox_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Outbox.Add") }},
		{"notification_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Notifications.Create") }},
		{"update_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Records.Update") }},
		{"doctor_lookup_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Users.ByID") }},
		{"record_lookup_fails", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Records.Get") }},
	}
	for _, tt := range rollbacks {
		t.Run("rollback/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			tt.setup(e)
			_, err := e.app.UpdateRecord(ctx, actorOf(c.owner), c.record.ID, domain.RecordChange{Title: ptr("new"), SetDoctor: true, DoctorID: c.otherDoctor.ID}, false)
			assert.ErrorIs(t, err, errBoom)
			stored, _ := e.record(t, c.record.ID)
			assert.Equal(t, c.record.Title, stored.Title)
			assert.Equal(t, c.doctor.ID, stored.DoctorID)
			assert.Empty(t, e.outboxEvents(), "no event without its assignment")
			assert.Empty(t, e.db.rows().Notifications, "no notification without its assignment")
			assert.Empty(t, e.auditEntries())
		})
	}

	t.Run("denied_audit_fails_keeps_the_refusal", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		e.db.Fail = failOn(errBoom, "Audit.Append")
		_, err := e.app.UpdateRecord(ctx, actorOf(c.doctor), c.record.ID, domain.RecordChange{Title: ptr("x")}, false)
		requireCode(t, err, domain.EForbidden, domain.MsgOnlyOwnerChanges)
	})
}

func TestDeleteRecord(t *testing.T) {
	t.Run("owner", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		e.mustComment(t, c.record, c.doctor)
		require.NoError(t, e.app.DeleteRecord(ctx, actorOf(c.owner), c.record.ID))
		_, ok := e.record(t, c.record.ID)
		assert.False(t, ok)
		assert.Empty(t, e.db.rows().Comments, "its comments go with it")
		assert.Equal(t, []auditShape{{c.owner.ID, domain.ActionRecordDelete, c.record.ID, c.owner.ID, domain.OutcomeAllowed}},
			shapes(e.auditEntries()))
	})

	refused := []struct {
		name  string
		actor func(c cast) domain.User
		id    func(c cast) int64
		code  domain.Code
		audit bool
	}{
		{"assigned_doctor", func(c cast) domain.User { return c.doctor }, func(c cast) int64 { return c.record.ID }, domain.EForbidden, true},
		{"other_patient", func(c cast) domain.User { return c.otherPatient }, func(c cast) int64 { return c.record.ID }, domain.ENotFound, true},
		{"other_doctor", func(c cast) domain.User { return c.otherDoctor }, func(c cast) int64 { return c.record.ID }, domain.ENotFound, true},
		{"doctor_on_unassigned", func(c cast) domain.User { return c.doctor }, func(c cast) int64 { return c.unassigned.ID }, domain.ENotFound, true},
		{"admin", func(c cast) domain.User { return c.admin }, func(c cast) int64 { return c.record.ID }, domain.EForbidden, true},
		{"missing", func(c cast) domain.User { return c.owner }, func(cast) int64 { return 9999 }, domain.ENotFound, false},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			actor, id := tt.actor(c), tt.id(c)
			requireCode(t, e.app.DeleteRecord(ctx, actorOf(actor), id), tt.code, "")
			assert.Len(t, e.db.rows().Records, 2)
			if tt.audit {
				assert.Equal(t, []auditShape{{actor.ID, domain.ActionRecordDelete, id, c.owner.ID, domain.OutcomeDenied}}, shapes(e.auditEntries()))
			} else {
				assert.Empty(t, e.auditEntries())
			}
		})
	}

	t.Run("delete_fails", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		e.db.Fail = failOn(errBoom, "Records.Delete")
		assert.ErrorIs(t, e.app.DeleteRecord(ctx, actorOf(c.owner), c.record.ID), errBoom)
		assert.Empty(t, e.auditEntries())
	})
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	// Reads by the doctor (buffered) and a change by the owner.
	_, err := e.app.GetRecord(ctx, actorOf(c.doctor), c.record.ID)
	require.NoError(t, err)
	_, err = e.app.GetRecord(ctx, actorOf(c.otherPatient), c.record.ID)
	requireCode(t, err, domain.ENotFound, "")
	_, err = e.app.UpdateRecord(ctx, actorOf(c.owner), c.record.ID, domain.RecordChange{Title: ptr("x")}, false)
	require.NoError(t, err)
	_, err = e.app.GetRecord(ctx, actorOf(c.owner), c.unassigned.ID) // another record
	require.NoError(t, err)

	t.Run("owner_sees_buffered_reads", func(t *testing.T) {
		got, next, err := e.app.AccessLog(ctx, actorOf(c.owner), c.record.ID, domain.Page{})
		require.NoError(t, err)
		assert.Nil(t, next)
		assert.ElementsMatch(t, []auditShape{
			{c.doctor.ID, domain.ActionRecordRead, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
			{c.otherPatient.ID, domain.ActionRecordRead, c.record.ID, c.owner.ID, domain.OutcomeDenied},
			{c.owner.ID, domain.ActionRecordUpdate, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
		}, shapes(got))
	})
	t.Run("paginated", func(t *testing.T) {
		got, next, err := e.app.AccessLog(ctx, actorOf(c.owner), c.record.ID, domain.Page{Limit: 2})
		require.NoError(t, err)
		assert.Len(t, got, 2)
		require.NotNil(t, next)
		got, next, err = e.app.AccessLog(ctx, actorOf(c.owner), c.record.ID, domain.Page{Limit: 2, After: next})
		require.NoError(t, err)
		assert.Len(t, got, 1)
		assert.Nil(t, next)
	})

	refused := []struct {
		name  string
		actor domain.User
		id    int64
		code  domain.Code
		msg   string
	}{
		{"assigned_doctor", c.doctor, c.record.ID, domain.EForbidden, domain.MsgOnlyOwnerAccessLog},
		{"other_patient", c.otherPatient, c.record.ID, domain.ENotFound, domain.MsgNotFound},
		{"other_doctor", c.otherDoctor, c.record.ID, domain.ENotFound, domain.MsgNotFound},
		{"admin", c.admin, c.record.ID, domain.EForbidden, domain.MsgAdminNoHealthData},
		{"missing", c.owner, 9999, domain.ENotFound, domain.MsgNotFound},
		{"admin_missing", c.admin, 9999, domain.EForbidden, domain.MsgAdminNoHealthData},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			_, _, err := e.app.AccessLog(ctx, actorOf(tt.actor), tt.id, domain.Page{})
			requireCode(t, err, tt.code, tt.msg)
		})
	}

	failures := []struct {
		name string
		op   string
	}{
		{"record_lookup", "Records.Get"},
		{"flush", "Audit.Append"},
		{"list", "Audit.List"},
	}
	for _, tt := range failures {
		t.Run("fails/"+tt.name, func(t *testing.T) {
			_, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID) // something to flush
			require.NoError(t, err)
			e.db.Fail = failOn(errBoom, tt.op)
			defer func() { e.db.Fail = nil }()
			_, _, err = e.app.AccessLog(ctx, actorOf(c.owner), c.record.ID, domain.Page{})
			assert.ErrorIs(t, err, errBoom)
		})
	}
}
