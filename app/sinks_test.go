package app

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestNotificationSink(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	ev := domain.NewAssignmentEvent(c.record, e.clock.Now())
	ev.ID = 77
	sink := e.app.NotificationSink()
	assert.Equal(t, SinkNotification, sink.Name())

	require.NoError(t, sink.Deliver(ctx, ev))
	// Delivering the same event again (a retry) adds nothing.
	require.NoError(t, sink.Deliver(ctx, ev))
	got, _, err := e.app.Notifications(ctx, actorOf(c.doctor), domain.Page{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, domain.Notification{
		ID: got[0].ID, UserID: c.doctor.ID, Kind: domain.KindDoctorAssigned, RecordID: c.record.ID,
		PatientID: c.owner.ID, EventID: 77, CreatedAt: ev.CreatedAt,
	}, got[0])

	e.db.Fail = failOn(errBoom, "Notifications.Create")
	assert.ErrorIs(t, sink.Deliver(ctx, ev), errBoom)
}

func TestEmailSink(t *testing.T) {
	setup := func(t *testing.T) (*testEnv, cast, domain.OutboxEvent, *[]domain.Email) {
		e := newEnv(t, Config{MailHost: "hr.example"})
		c := newCast(t, e)
		ev := domain.NewAssignmentEvent(c.record, e.clock.Now())
		ev.ID = 42
		return e, c, ev, &[]domain.Email{}
	}
	recorder := func(sent *[]domain.Email) *fakeMailer {
		return &fakeMailer{send: func(_ context.Context, m domain.Email) error {
			*sent = append(*sent, m)
			return nil
		}}
	}

	t.Run("sends_assignment_email_to_the_doctor", func(t *testing.T) {
		e, c, ev, sent := setup(t)
		sink := e.app.EmailSink(recorder(sent))
		assert.Equal(t, SinkEmail, sink.Name())
		require.NoError(t, sink.Deliver(ctx, ev))
		require.Len(t, *sent, 1)
		m := (*sent)[0]
		assert.Equal(t, domain.AssignmentEmail(ev, c.doctor, c.owner, "hr.example"), m)
		assert.Equal(t, c.doctor.Email, m.To)
		assert.Equal(t, "<outbox-42@hr.example>", m.MessageID)
		assert.Contains(t, m.Body, c.owner.Username)
		assert.NotContains(t, m.Body, c.record.Title)
		assert.NotContains(t, m.Body, c.record.Content)
	})

	t.Run("default_mail_host", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		ev := domain.NewAssignmentEvent(c.record, e.clock.Now())
		ev.ID = 5
		var sent []domain.Email
		require.NoError(t, e.app.EmailSink(recorder(&sent)).Deliver(ctx, ev))
		assert.Equal(t, "<outbox-5@healthrecord.localhost>", sent[0].MessageID)
	})

	lookups := []struct {
		name   string
		breakE func(c cast, ev *domain.OutboxEvent)
		prefix string
	}{
		{"doctor_missing", func(_ cast, ev *domain.OutboxEvent) { ev.DoctorID = 9999 }, "load doctor 9999: "},
		{"patient_missing", func(_ cast, ev *domain.OutboxEvent) { ev.PatientID = 8888 }, "load patient 8888: "},
	}
	for _, tt := range lookups {
		t.Run(tt.name, func(t *testing.T) {
			e, c, ev, sent := setup(t)
			tt.breakE(c, &ev)
			err := e.app.EmailSink(recorder(sent)).Deliver(ctx, ev)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.prefix), err.Error())
			assert.Equal(t, domain.ENotFound, domain.ErrorCode(err), "wrapped with %%w")
			assert.Empty(t, *sent)
		})
	}

	t.Run("lookup_outage_wrapped", func(t *testing.T) {
		e, _, ev, sent := setup(t)
		e.db.Fail = failOn(errBoom, "Users.ByID")
		err := e.app.EmailSink(recorder(sent)).Deliver(ctx, ev)
		assert.ErrorIs(t, err, errBoom)
	})

	t.Run("mailer_fails", func(t *testing.T) {
		e, _, ev, _ := setup(t)
		m := &fakeMailer{send: func(context.Context, domain.Email) error { return errBoom }}
		assert.ErrorIs(t, e.app.EmailSink(m).Deliver(ctx, ev), errBoom)
	})
}
