package domain_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"healthrecord/domain"
)

func TestAssignmentEmail(t *testing.T) {
	r := domain.Record{ID: 5, PatientID: 1, DoctorID: 10, Title: "HIV test result", Content: "Positive; start therapy"}
	ev := domain.NewAssignmentEvent(r, r.CreatedAt)
	ev.ID = 42
	doctor := domain.User{ID: 10, Username: "dr_house", Email: "house@clinic.example", Role: domain.RoleDoctor}
	patient := domain.User{ID: 1, Username: "jane.doe", Email: "jane@example.com", Role: domain.RolePatient}

	m := domain.AssignmentEmail(ev, doctor, patient, "hr.example")

	assert.Equal(t, "house@clinic.example", m.To)
	assert.Equal(t, "New Patient Assigned", m.Subject)
	assert.Contains(t, m.Body, "jane.doe")
	assert.Contains(t, m.Body, "dr_house")
	assert.NotContains(t, m.Body, r.Title)
	assert.NotContains(t, m.Body, r.Content)
	assert.NotContains(t, m.Body, patient.Email)
	assert.NotContains(t, m.Subject, r.Title)
	assert.Equal(t, "<outbox-42@hr.example>", m.MessageID)

	t.Run("message_id_stable_per_event", func(t *testing.T) {
		assert.Equal(t, m.MessageID, domain.AssignmentEmail(ev, doctor, patient, "hr.example").MessageID)
		other := ev
		other.ID = 43
		assert.NotEqual(t, m.MessageID, domain.AssignmentEmail(other, doctor, patient, "hr.example").MessageID)
	})
}
