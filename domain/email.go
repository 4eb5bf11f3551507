package domain

import "fmt"

// Email is one message to send.
type Email struct {
	To        string
	Subject   string
	Body      string
	MessageID string // stable per event, so a redelivery is recognisable
}

// AssignmentEmail tells a doctor a patient was assigned to them. It names
// the patient's username and never the record's title or content.
func AssignmentEmail(ev OutboxEvent, doctor, patient User, host string) Email {
	return Email{
		To:      doctor.Email,
		Subject: "New Patient Assigned",
		Body: fmt.Sprintf("Hello %s,\r\n\r\nA health record of patient %s has been assigned to you.\r\n"+
			"Sign in to healthrecord to read it.\r\n", doctor.Username, patient.Username),
		MessageID: fmt.Sprintf("<outbox-%d@%s>", ev.ID, host),
	}
}
