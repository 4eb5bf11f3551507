package domain

// The access policy, in one place. The app layer calls these; handlers and
// repositories never check roles themselves. Not visible means not found,
// so a caller cannot tell another patient's record from a missing one.

// Policy messages.
const (
	MsgOnlyPatientsCreate = "Only patients can create health records."
	MsgOnlyOwnerChanges   = "Only the patient who owns this record can change it."
	MsgOnlyOwnerAccessLog = "Only the patient who owns this record can read its access log."
	MsgOnlyDoctorsComment = "Only doctors can comment on health records."
	MsgAdminNoHealthData  = "Administrators cannot access health records."
	MsgAdminOnly          = MsgNoPermission
	MsgNoSelfDeactivate   = "You cannot deactivate your own account."
)

// CanUseRecords refuses admins: they manage accounts, never read health data.
func CanUseRecords(a Actor) error {
	if a.Role == RolePatient || a.Role == RoleDoctor {
		return nil
	}
	return Forbidden(MsgAdminNoHealthData)
}

// CanCreateRecord: only patients create records.
func CanCreateRecord(a Actor) error {
	if err := CanUseRecords(a); err != nil {
		return err
	}
	if a.Role != RolePatient {
		return Forbidden(MsgOnlyPatientsCreate)
	}
	return nil
}

// RecordScope is the one visibility rule, per role: the records a patient
// owns, or those assigned to a doctor now. A record's comments are visible
// exactly when the record is. Stores apply it in SQL for lists; Contains
// applies it to one record. Exactly one field is set.
type RecordScope struct {
	PatientID int64
	DoctorID  int64
}

// ScopeOf is what a may see. Admins (and unknown roles) see no health
// data: EForbidden.
func ScopeOf(a Actor) (RecordScope, error) {
	switch a.Role {
	case RolePatient:
		return RecordScope{PatientID: a.ID}, nil
	case RoleDoctor:
		return RecordScope{DoctorID: a.ID}, nil
	}
	return RecordScope{}, Forbidden(MsgAdminNoHealthData)
}

// Contains reports whether r is in the scope.
func (s RecordScope) Contains(r Record) bool {
	switch {
	case s.PatientID != 0:
		return r.PatientID == s.PatientID
	case s.DoctorID != 0:
		return r.DoctorID == s.DoctorID
	}
	return false
}

// CanView: the owner, or the doctor the record is assigned to now.
func CanView(a Actor, r Record) bool {
	s, err := ScopeOf(a)
	return err == nil && s.Contains(r)
}

// CanChange covers update and delete: only the owner. The assigned doctor
// sees the record, so it gets 403; anyone else gets 404.
func CanChange(a Actor, r Record) error { return ownerOnly(a, r, MsgOnlyOwnerChanges) }

// ownerOnly is the rule for what only a record's owner may do: 403 (with
// refused) to whoever else sees the record, 404 to anyone who does not.
func ownerOnly(a Actor, r Record, refused string) error {
	if err := CanReadRecord(a, r); err != nil {
		return err
	}
	if r.PatientID != a.ID {
		return Forbidden(refused)
	}
	return nil
}

// CanReadRecord is CanView as an error: 403 for admins, 404 when hidden.
func CanReadRecord(a Actor, r Record) error {
	if err := CanUseRecords(a); err != nil {
		return err
	}
	if !CanView(a, r) {
		return NotFound()
	}
	return nil
}

// CanCommentAt is the role half of commenting, checked before the record
// is looked up: patients (and admins) never comment.
func CanCommentAt(a Actor) error {
	if err := CanUseRecords(a); err != nil {
		return err
	}
	if a.Role != RoleDoctor {
		return Forbidden(MsgOnlyDoctorsComment)
	}
	return nil
}

// CanComment: only the doctor assigned to the record. A record the doctor
// cannot see is reported as not existing, in the "record" field.
func CanComment(a Actor, r Record) error {
	if err := CanCommentAt(a); err != nil {
		return err
	}
	if !CanView(a, r) {
		return DoesNotExist("record", r.ID)
	}
	return nil
}

// CanReadAccessLog: only the record's owner reads who touched it.
func CanReadAccessLog(a Actor, r Record) error { return ownerOnly(a, r, MsgOnlyOwnerAccessLog) }

// CanDeactivate: an admin deactivates others, never itself, so the
// service cannot lose its last console by a slip. EInvalid.
func CanDeactivate(a Actor, userID int64) error {
	if a.ID == userID {
		return Errorf(EInvalid, MsgNoSelfDeactivate)
	}
	return nil
}

// CanAdminister: the admin API is for admins only.
func CanAdminister(a Actor) error {
	if a.Role != RoleAdmin {
		return Forbidden(MsgAdminOnly)
	}
	return nil
}
