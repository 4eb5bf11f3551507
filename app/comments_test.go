package app

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestCreateComment(t *testing.T) {
	t.Run("assigned_doctor", func(t *testing.T) {
		e := newEnv(t, Config{})
		c := newCast(t, e)
		now := e.clock.Now()
		got, err := e.app.CreateComment(ctx, actorOf(c.doctor), c.record.ID, ptr("Rest and ice."))
		require.NoError(t, err)
		assert.Equal(t, domain.Comment{ID: got.ID, RecordID: c.record.ID, DoctorID: c.doctor.ID, Text: "Rest and ice.", CreatedAt: now}, got)
		r, err := e.app.GetRecord(ctx, actorOf(c.owner), c.record.ID)
		require.NoError(t, err)
		assert.Equal(t, []domain.Comment{got}, r.Comments)
		entries := e.auditEntries()
		assert.Equal(t, []auditShape{{c.doctor.ID, domain.ActionCommentCreate, c.record.ID, c.owner.ID, domain.OutcomeAllowed}}, shapes(entries))
		assert.True(t, e.db.inTx(t, "Audit.Append", 0), "committed with the comment")
	})

	forbidden := []struct {
		name  string
		actor func(c cast) domain.User
		msg   string
	}{
		{"owner", func(c cast) domain.User { return c.owner }, domain.MsgOnlyDoctorsComment},
		{"other_patient", func(c cast) domain.User { return c.otherPatient }, domain.MsgOnlyDoctorsComment},
		{"admin", func(c cast) domain.User { return c.admin }, domain.MsgAdminNoHealthData},
	}
	for _, tt := range forbidden {
		t.Run("forbidden/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			_, err := e.app.CreateComment(ctx, actorOf(tt.actor(c)), c.record.ID, ptr("x"))
			requireCode(t, err, domain.EForbidden, tt.msg)
			assert.Empty(t, e.db.rows().Comments)
			assert.Empty(t, e.flushed(t))
		})
	}

	// A record the doctor cannot see is reported exactly like a missing one.
	hidden := []struct {
		name   string
		record func(c cast) int64
		audit  bool
	}{
		{"other_doctors_record", func(c cast) int64 { return c.record.ID }, true},
		{"unassigned_record", func(c cast) int64 { return c.unassigned.ID }, true},
		{"missing_record", func(cast) int64 { return 9999 }, false},
	}
	for _, tt := range hidden {
		t.Run("does_not_exist/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			id := tt.record(c)
			_, err := e.app.CreateComment(ctx, actorOf(c.otherDoctor), id, ptr("x"))
			requireFields(t, err, map[string][]string{"record": {`Invalid pk "` + strconv.FormatInt(id, 10) + `" - object does not exist.`}})
			assert.Empty(t, e.db.rows().Comments)
			if tt.audit {
				assert.Equal(t, []auditShape{{c.otherDoctor.ID, domain.ActionCommentCreate, id, c.owner.ID, domain.OutcomeDenied}}, shapes(e.flushed(t)))
			} else {
				assert.Empty(t, e.flushed(t))
			}
		})
	}

	invalid := []struct {
		name string
		text *string
		want string
	}{
		{"missing", nil, domain.MsgRequired},
		{"blank", ptr("  "), domain.MsgBlank},
		{"null_char", ptr("a\x00"), domain.MsgNullChars},
	}
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			_, err := e.app.CreateComment(ctx, actorOf(c.doctor), c.record.ID, tt.text)
			requireFields(t, err, map[string][]string{"comment": {tt.want}})
			assert.Empty(t, e.db.rows().Comments)
			assert.Empty(t, e.auditEntries())
		})
	}

	failures := []struct {
		name  string
		setup func(e *testEnv)
	}{
		{"record_lookup", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Records.Get") }},
		{"create", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Comments.Create") }},
		{"audit", func(e *testEnv) { e.db.Fail = failOn(errBoom, "Audit.Append") }},
		{"commit", func(e *testEnv) { e.db.CommitErr = errBoom }},
	}
	for _, tt := range failures {
		t.Run("rollback/"+tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			c := newCast(t, e)
			tt.setup(e)
			_, err := e.app.CreateComment(ctx, actorOf(c.doctor), c.record.ID, ptr("x"))
			assert.ErrorIs(t, err, errBoom)
			assert.Empty(t, e.db.rows().Comments)
			assert.Empty(t, e.auditEntries())
		})
	}
}

func TestGetComment(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	// Written by the other doctor while assigned; the record now belongs
	// to c.doctor again.
	cm := e.mustComment(t, c.record, c.otherDoctor)

	tests := []struct {
		name    string
		actor   domain.User
		code    domain.Code
		outcome string
	}{
		// Comments follow their record: the author, no longer assigned,
		// loses it; the doctor assigned now sees it.
		{"author_no_longer_assigned", c.otherDoctor, domain.ENotFound, domain.OutcomeDenied},
		{"record_owner", c.owner, "", domain.OutcomeAllowed},
		{"assigned_doctor_not_author", c.doctor, "", domain.OutcomeAllowed},
		{"other_patient", c.otherPatient, domain.ENotFound, domain.OutcomeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.flushed(t))
			got, err := e.app.GetComment(ctx, actorOf(tt.actor), cm.ID)
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, cm, got)
			} else {
				requireCode(t, err, tt.code, domain.MsgNotFound)
			}
			assert.Equal(t, []auditShape{{tt.actor.ID, domain.ActionCommentRead, c.record.ID, c.owner.ID, tt.outcome}},
				shapes(e.flushed(t)[before:]))
		})
	}

	t.Run("admin", func(t *testing.T) {
		_, err := e.app.GetComment(ctx, actorOf(c.admin), cm.ID)
		requireCode(t, err, domain.EForbidden, domain.MsgAdminNoHealthData)
	})
	t.Run("missing", func(t *testing.T) {
		_, err := e.app.GetComment(ctx, actorOf(c.owner), 9999)
		requireCode(t, err, domain.ENotFound, "")
	})
	t.Run("record_lookup_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Records.Get")
		defer func() { e.db.Fail = nil }()
		_, err := e.app.GetComment(ctx, actorOf(c.owner), cm.ID)
		assert.ErrorIs(t, err, errBoom)
	})
}

func TestListComments(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	other := e.mustRecord(t, c.otherPatient, c.doctor)
	c1 := e.mustComment(t, c.record, c.doctor)
	c2 := e.mustComment(t, other, c.doctor)
	c3 := e.mustComment(t, c.record, c.otherDoctor)

	tests := []struct {
		name   string
		actor  domain.User
		record int64
		want   []domain.Comment
	}{
		// The doctor assigned now sees every comment on its records, the
		// former author none.
		{"doctor_assigned_records", c.doctor, 0, []domain.Comment{c3, c2, c1}},
		{"doctor_one_record", c.doctor, c.record.ID, []domain.Comment{c3, c1}},
		{"author_no_longer_assigned", c.otherDoctor, 0, []domain.Comment{}},
		{"author_filter_on_record_it_left", c.otherDoctor, c.record.ID, []domain.Comment{}},
		{"patient_comments_on_own_records", c.owner, 0, []domain.Comment{c3, c1}},
		{"other_patient", c.otherPatient, 0, []domain.Comment{c2}},
		{"patient_filter_on_someone_elses_record", c.otherPatient, c.record.ID, []domain.Comment{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := e.app.ListComments(ctx, actorOf(tt.actor), tt.record, domain.Page{})
			require.NoError(t, err)
			assert.Nil(t, next)
			assert.Equal(t, tt.want, got)
		})
	}

	// One comment.list entry per record whose comments the list showed.
	t.Run("audited_per_record", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			actor  domain.User
			record int64
			want   []auditShape
		}{
			{"doctor", c.doctor, 0, []auditShape{
				{c.doctor.ID, domain.ActionCommentList, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
				{c.doctor.ID, domain.ActionCommentList, other.ID, c.otherPatient.ID, domain.OutcomeAllowed},
			}},
			{"owner_one_record", c.owner, c.record.ID, []auditShape{
				{c.owner.ID, domain.ActionCommentList, c.record.ID, c.owner.ID, domain.OutcomeAllowed},
			}},
			{"nothing_shown", c.otherDoctor, 0, []auditShape{
				{c.otherDoctor.ID, domain.ActionCommentList, 0, 0, domain.OutcomeAllowed},
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := len(e.flushed(t))
				_, _, err := e.app.ListComments(ctx, actorOf(tt.actor), tt.record, domain.Page{})
				require.NoError(t, err)
				assert.Equal(t, tt.want, shapes(e.flushed(t)[before:]))
			})
		}
	})

	t.Run("paginated", func(t *testing.T) {
		got, next, err := e.app.ListComments(ctx, actorOf(c.owner), 0, domain.Page{Limit: 1})
		require.NoError(t, err)
		assert.Equal(t, []domain.Comment{c3}, got)
		require.NotNil(t, next)
		assert.Equal(t, domain.Cursor{CreatedAt: c3.CreatedAt, ID: c3.ID}, *next)
	})
	t.Run("admin", func(t *testing.T) {
		_, _, err := e.app.ListComments(ctx, actorOf(c.admin), 0, domain.Page{})
		requireCode(t, err, domain.EForbidden, domain.MsgAdminNoHealthData)
	})
	t.Run("store_fails", func(t *testing.T) {
		e.db.Fail = failOn(errBoom, "Comments.List")
		defer func() { e.db.Fail = nil }()
		_, _, err := e.app.ListComments(ctx, actorOf(c.owner), 0, domain.Page{})
		assert.ErrorIs(t, err, errBoom)
	})
}
