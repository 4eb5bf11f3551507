package domain_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// The cast every policy table runs over: one record owner, one stranger
// patient, the assigned doctor, another doctor and an admin.
var (
	owner        = domain.Actor{ID: 1, Role: domain.RolePatient}
	otherPatient = domain.Actor{ID: 2, Role: domain.RolePatient}
	assignedDoc  = domain.Actor{ID: 10, Role: domain.RoleDoctor}
	otherDoc     = domain.Actor{ID: 11, Role: domain.RoleDoctor}
	admin        = domain.Actor{ID: 99, Role: domain.RoleAdmin}

	assigned   = domain.Record{ID: 5, PatientID: 1, DoctorID: 10}
	unassigned = domain.Record{ID: 6, PatientID: 1}
)

// want describes an expected policy answer: ok, or a code with a detail
// message, or a field error.
type want struct {
	code  domain.Code
	msg   string
	field string
}

var (
	ok           = want{}
	notFound     = want{code: domain.ENotFound, msg: domain.MsgNotFound}
	adminNo      = want{code: domain.EForbidden, msg: domain.MsgAdminNoHealthData}
	ownerOnly    = want{code: domain.EForbidden, msg: domain.MsgOnlyOwnerChanges}
	logOwnerOnly = want{code: domain.EForbidden, msg: domain.MsgOnlyOwnerAccessLog}
	doctorsOnly  = want{code: domain.EForbidden, msg: domain.MsgOnlyDoctorsComment}
	noRecord     = want{code: domain.EInvalid, field: "record"}
)

func assertPolicy(t *testing.T, w want, err error) {
	t.Helper()
	if w.code == "" {
		assert.NoError(t, err)
		return
	}
	require.Error(t, err)
	var e *domain.Error
	require.True(t, errors.As(err, &e), "want *domain.Error, got %T", err)
	assert.Equal(t, w.code, e.Code)
	if w.msg != "" {
		assert.Equal(t, w.msg, e.Message)
	}
	if w.field != "" {
		assert.Contains(t, e.Fields, w.field)
	}
}

func TestCanView(t *testing.T) {
	tests := []struct {
		name   string
		actor  domain.Actor
		record domain.Record
		want   bool
	}{
		{"owner/assigned", owner, assigned, true},
		{"owner/unassigned", owner, unassigned, true},
		{"other_patient/assigned", otherPatient, assigned, false},
		{"other_patient/unassigned", otherPatient, unassigned, false},
		{"assigned_doctor/assigned", assignedDoc, assigned, true},
		{"assigned_doctor/unassigned", assignedDoc, unassigned, false},
		{"other_doctor/assigned", otherDoc, assigned, false},
		{"other_doctor/unassigned", otherDoc, unassigned, false},
		{"admin/assigned", admin, assigned, false},
		{"admin/unassigned", admin, unassigned, false},
		// Ids are compared within a role only: a patient whose id equals
		// the doctor's, or a doctor whose id equals the owner's, sees nothing.
		{"patient_with_doctors_id", domain.Actor{ID: 10, Role: domain.RolePatient}, assigned, false},
		{"doctor_with_owners_id", domain.Actor{ID: 1, Role: domain.RoleDoctor}, assigned, false},
		{"doctor_zero_never_sees_unassigned", domain.Actor{ID: 0, Role: domain.RoleDoctor}, unassigned, false},
		{"no_role", domain.Actor{ID: 1}, assigned, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, domain.CanView(tt.actor, tt.record))
		})
	}
}

// recordPolicyCase is one actor against one record for a rule returning an error.
type recordPolicyCase struct {
	name   string
	actor  domain.Actor
	record domain.Record
	want   want
}

func runRecordPolicy(t *testing.T, rule func(domain.Actor, domain.Record) error, tests []recordPolicyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertPolicy(t, tt.want, rule(tt.actor, tt.record))
		})
	}
}

func TestCanChange(t *testing.T) {
	runRecordPolicy(t, domain.CanChange, []recordPolicyCase{
		{"owner/assigned", owner, assigned, ok},
		{"owner/unassigned", owner, unassigned, ok},
		{"other_patient/assigned", otherPatient, assigned, notFound},
		{"other_patient/unassigned", otherPatient, unassigned, notFound},
		{"assigned_doctor/assigned", assignedDoc, assigned, ownerOnly},
		{"assigned_doctor/unassigned", assignedDoc, unassigned, notFound},
		{"other_doctor/assigned", otherDoc, assigned, notFound},
		{"other_doctor/unassigned", otherDoc, unassigned, notFound},
		{"admin/assigned", admin, assigned, adminNo},
		{"admin/unassigned", admin, unassigned, adminNo},
	})
}

func TestCanReadRecord(t *testing.T) {
	runRecordPolicy(t, domain.CanReadRecord, []recordPolicyCase{
		{"owner/assigned", owner, assigned, ok},
		{"owner/unassigned", owner, unassigned, ok},
		{"other_patient/assigned", otherPatient, assigned, notFound},
		{"other_patient/unassigned", otherPatient, unassigned, notFound},
		{"assigned_doctor/assigned", assignedDoc, assigned, ok},
		{"assigned_doctor/unassigned", assignedDoc, unassigned, notFound},
		{"other_doctor/assigned", otherDoc, assigned, notFound},
		{"other_doctor/unassigned", otherDoc, unassigned, notFound},
		{"admin/assigned", admin, assigned, adminNo},
		{"admin/unassigned", admin, unassigned, adminNo},
	})
}

func TestCanReadAccessLog(t *testing.T) {
	runRecordPolicy(t, domain.CanReadAccessLog, []recordPolicyCase{
		{"owner/assigned", owner, assigned, ok},
		{"owner/unassigned", owner, unassigned, ok},
		{"other_patient/assigned", otherPatient, assigned, notFound},
		{"other_patient/unassigned", otherPatient, unassigned, notFound},
		{"assigned_doctor/assigned", assignedDoc, assigned, logOwnerOnly},
		{"assigned_doctor/unassigned", assignedDoc, unassigned, notFound},
		{"other_doctor/assigned", otherDoc, assigned, notFound},
		{"other_doctor/unassigned", otherDoc, unassigned, notFound},
		{"admin/assigned", admin, assigned, adminNo},
		{"admin/unassigned", admin, unassigned, adminNo},
	})
}

func TestCanComment(t *testing.T) {
	runRecordPolicy(t, domain.CanComment, []recordPolicyCase{
		{"owner/assigned", owner, assigned, doctorsOnly},
		{"owner/unassigned", owner, unassigned, doctorsOnly},
		{"other_patient/assigned", otherPatient, assigned, doctorsOnly},
		{"other_patient/unassigned", otherPatient, unassigned, doctorsOnly},
		{"assigned_doctor/assigned", assignedDoc, assigned, ok},
		{"assigned_doctor/unassigned", assignedDoc, unassigned, noRecord},
		{"other_doctor/assigned", otherDoc, assigned, noRecord},
		{"other_doctor/unassigned", otherDoc, unassigned, noRecord},
		{"admin/assigned", admin, assigned, adminNo},
		{"admin/unassigned", admin, unassigned, adminNo},
	})
}

func TestCanComment_HiddenRecordNamesItsID(t *testing.T) {
	err := domain.CanComment(otherDoc, assigned)
	var e *domain.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, map[string][]string{"record": {`Invalid pk "5" - object does not exist.`}}, e.Fields)
}

// actorPolicyCase is one actor for a rule that depends on the role only.
type actorPolicyCase struct {
	name  string
	actor domain.Actor
	want  want
}

func runActorPolicy(t *testing.T, rule func(domain.Actor) error, tests []actorPolicyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertPolicy(t, tt.want, rule(tt.actor))
		})
	}
}

func TestCanCommentAt(t *testing.T) {
	runActorPolicy(t, domain.CanCommentAt, []actorPolicyCase{
		{"patient", owner, doctorsOnly},
		{"doctor", assignedDoc, ok},
		{"other_doctor", otherDoc, ok},
		{"admin", admin, adminNo},
		{"no_role", domain.Actor{ID: 1}, adminNo},
	})
}

func TestCanCreateRecord(t *testing.T) {
	runActorPolicy(t, domain.CanCreateRecord, []actorPolicyCase{
		{"patient", owner, ok},
		{"other_patient", otherPatient, ok},
		{"doctor", assignedDoc, want{code: domain.EForbidden, msg: domain.MsgOnlyPatientsCreate}},
		{"admin", admin, adminNo},
		{"no_role", domain.Actor{ID: 1}, adminNo},
	})
}

func TestCanAdminister(t *testing.T) {
	forbidden := want{code: domain.EForbidden, msg: domain.MsgNoPermission}
	runActorPolicy(t, domain.CanAdminister, []actorPolicyCase{
		{"patient", owner, forbidden},
		{"doctor", assignedDoc, forbidden},
		{"admin", admin, ok},
		{"no_role", domain.Actor{ID: 99}, forbidden},
	})
}

func TestCanUseRecords(t *testing.T) {
	runActorPolicy(t, domain.CanUseRecords, []actorPolicyCase{
		{"patient", owner, ok},
		{"doctor", assignedDoc, ok},
		{"admin", admin, adminNo},
	})
}

// TestRecordScope: one rule for records and their comments, per role.
// The record was assigned to doctor 11 (who may have commented on it) and
// has since been reassigned to doctor 10: only the doctor assigned now
// sees it, and so its comments.
func TestRecordScope(t *testing.T) {
	tests := []struct {
		name  string
		actor domain.Actor
		scope domain.RecordScope
		sees  bool
	}{
		{"owner", owner, domain.RecordScope{PatientID: owner.ID}, true},
		{"other_patient", otherPatient, domain.RecordScope{PatientID: otherPatient.ID}, false},
		{"assigned_doctor", assignedDoc, domain.RecordScope{DoctorID: assignedDoc.ID}, true},
		{"former_doctor", otherDoc, domain.RecordScope{DoctorID: otherDoc.ID}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := domain.ScopeOf(tt.actor)
			require.NoError(t, err)
			assert.Equal(t, tt.scope, s)
			assert.Equal(t, tt.sees, s.Contains(assigned))
			assert.Equal(t, tt.sees, domain.CanView(tt.actor, assigned))
		})
	}
	t.Run("admin", func(t *testing.T) {
		_, err := domain.ScopeOf(admin)
		assertPolicy(t, adminNo, err)
		assert.False(t, domain.CanView(admin, assigned))
	})
	t.Run("unassigned_record", func(t *testing.T) {
		assert.False(t, domain.RecordScope{DoctorID: assignedDoc.ID}.Contains(unassigned))
		assert.False(t, domain.RecordScope{}.Contains(unassigned), "an empty scope holds nothing")
	})
}
