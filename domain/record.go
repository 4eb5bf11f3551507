package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Field limits, counted in characters.
const (
	MaxTitleLen   = 100
	MaxContentLen = 100_000
	MaxCommentLen = 10_000
)

// Record is one patient's health record, optionally assigned to a doctor.
type Record struct {
	ID        int64
	PatientID int64
	DoctorID  int64 // 0: unassigned
	Title     string
	Content   string
	CreatedAt time.Time
	UpdatedAt time.Time
	Comments  []Comment
}

// RecordChange is a create or an update request. A nil field is absent
// (PATCH); SetDoctor with DoctorID 0 unassigns.
type RecordChange struct {
	Title     *string
	Content   *string
	SetDoctor bool
	DoctorID  int64
}

// trimmed strips surrounding white space from the text fields, as DRF's
// CharField does by default.
func (c RecordChange) trimmed() RecordChange {
	c.Title, c.Content = trimPtr(c.Title), trimPtr(c.Content)
	return c
}

func trimPtr(s *string) *string {
	if s == nil {
		return nil
	}
	t := strings.TrimSpace(*s)
	return &t
}

// Validate checks the values present in c (after trimming); with full set (create, PUT) the
// title and content are required.
func (c RecordChange) Validate(full bool) error {
	c = c.trimmed()
	fe := FieldErrors{}
	checkText(fe, "title", c.Title, full, MaxTitleLen)
	checkText(fe, "content", c.Content, full, MaxContentLen)
	return fe.Err()
}

// checkText applies DRF's CharField rules: required, not blank, no NUL,
// at most max characters.
func checkText(fe FieldErrors, field string, v *string, required bool, max int) {
	switch {
	case v == nil:
		if required {
			fe.Add(field, MsgRequired)
		}
	case strings.ContainsRune(*v, 0):
		fe.Add(field, MsgNullChars)
	case strings.TrimSpace(*v) == "":
		fe.Add(field, MsgBlank)
	case utf8.RuneCountInString(*v) > max:
		fe.Add(field, MaxLengthMessage(max))
	}
}

// NewRecord builds a patient's new record. The doctor, when set, must have
// been checked to be assignable by the caller (it needs storage).
func NewRecord(patientID int64, c RecordChange, now time.Time) (Record, error) {
	c = c.trimmed()
	if err := c.Validate(true); err != nil {
		return Record{}, err
	}
	now = now.UTC()
	r := Record{PatientID: patientID, Title: *c.Title, Content: *c.Content, CreatedAt: now, UpdatedAt: now}
	if c.SetDoctor {
		r.DoctorID = c.DoctorID
	}
	return r, nil
}

// Apply changes r by c (validated with full for PUT) and reports whether
// the doctor changed to another doctor, which must notify the new one.
func (r *Record) Apply(c RecordChange, full bool, now time.Time) (newlyAssigned bool, err error) {
	c = c.trimmed()
	if err := c.Validate(full); err != nil {
		return false, err
	}
	if c.Title != nil {
		r.Title = *c.Title
	}
	if c.Content != nil {
		r.Content = *c.Content
	}
	if c.SetDoctor {
		newlyAssigned = c.DoctorID != 0 && c.DoctorID != r.DoctorID
		r.DoctorID = c.DoctorID
	}
	// A PUT without "doctor" leaves it: DRF treats the nullable field as
	// not required, so a client may PUT back what it read.
	r.UpdatedAt = now.UTC()
	return newlyAssigned, nil
}

// Comment is a doctor's clinical note on a record. Comments are
// append-only: there is no method to change one.
type Comment struct {
	ID        int64
	RecordID  int64
	DoctorID  int64
	Text      string
	CreatedAt time.Time
}

// NewComment validates and builds a comment.
func NewComment(recordID, doctorID int64, text *string, now time.Time) (Comment, error) {
	if err := ValidateCommentText(text); err != nil {
		return Comment{}, err
	}
	return Comment{RecordID: recordID, DoctorID: doctorID, Text: *trimPtr(text), CreatedAt: now.UTC()}, nil
}

// ValidateCommentText is NewComment's rule for the text alone (nil when
// absent): EInvalid with the "comment" field's messages.
func ValidateCommentText(text *string) error {
	fe := FieldErrors{}
	checkText(fe, "comment", trimPtr(text), true, MaxCommentLen)
	return fe.Err()
}
