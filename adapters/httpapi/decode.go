package httpapi

import (
	"net/http"
	"time"

	"healthrecord/domain"
)

// The request decoders: each reads one body shape into what the app takes.
// Shape and type errors are found here; the values are validated by the
// domain (whose messages are merged in when both find something).

var (
	recordFields   = []string{"title", "content", "doctor"}
	recordReadOnly = []string{"id", "patient", "comments", "created_at", "updated_at"}
	userReadOnly   = []string{"id", "approved", "is_active"}
)

// decodeRecordChange reads a record create or update; full is true for
// POST and PUT, false for PATCH.
func (s *server) decodeRecordChange(w http.ResponseWriter, r *http.Request, full bool) (domain.RecordChange, error) {
	o, err := s.decodeJSON(w, r)
	if err != nil {
		return domain.RecordChange{}, err
	}
	return recordChange(o, full)
}

func recordChange(o *object, full bool) (domain.RecordChange, error) {
	o.only(recordFields, recordReadOnly)
	c := domain.RecordChange{
		// Required-ness is the domain's rule; here only types are checked.
		Title:   o.str("title", false),
		Content: o.str("content", false),
	}
	// "doctor": null unassigns (SetDoctor with 0); absent leaves it.
	c.DoctorID, c.SetDoctor = o.pk("doctor", false, true)
	if err := o.err(c.Validate(full)); err != nil {
		return domain.RecordChange{}, err
	}
	return c, nil
}

// commentInput is a comment to create.
type commentInput struct {
	RecordID int64
	Text     *string
}

func (s *server) decodeComment(w http.ResponseWriter, r *http.Request) (commentInput, error) {
	o, err := s.decodeJSON(w, r)
	if err != nil {
		return commentInput{}, err
	}
	return commentFrom(o)
}

func commentFrom(o *object) (commentInput, error) {
	o.only([]string{"record", "comment"}, []string{"id", "doctor", "created_at"})
	var in commentInput
	in.RecordID, _ = o.pk("record", true, false)
	in.Text = o.str("comment", false)
	if len(o.errs) > 0 {
		_, verr := domain.NewComment(0, 0, in.Text, time.Time{})
		return commentInput{}, o.err(verr)
	}
	// The text is validated by the app, after the record is checked, as
	// DRF validates both together; a missing text is the domain's
	// "required".
	return in, nil
}

func (s *server) decodeRegistration(w http.ResponseWriter, r *http.Request) (domain.Registration, error) {
	o, err := s.decodeJSON(w, r)
	if err != nil {
		return domain.Registration{}, err
	}
	return registrationFrom(o)
}

func registrationFrom(o *object) (domain.Registration, error) {
	o.only([]string{"username", "email", "password", "role"}, userReadOnly)
	var reg domain.Registration
	for _, f := range []struct {
		name string
		dst  *string
	}{{"username", &reg.Username}, {"email", &reg.Email}, {"password", &reg.Password}} {
		if v := o.str(f.name, true); v != nil {
			*f.dst = *v
		}
	}
	if v := o.str("role", true); v != nil {
		reg.Role = domain.Role(*v)
	}
	if len(o.errs) > 0 {
		return domain.Registration{}, o.err(reg.Validate())
	}
	return reg, nil
}

// decodeStrings reads an object of required, non-blank string fields
// (credentials, tokens, passwords), in the order given.
func (s *server) decodeStrings(w http.ResponseWriter, r *http.Request, names ...string) ([]string, error) {
	o, err := s.decodeJSON(w, r)
	if err != nil {
		return nil, err
	}
	return stringsFrom(o, names...)
}

func stringsFrom(o *object, names ...string) ([]string, error) {
	o.only(names, nil)
	out := make([]string, len(names))
	for i, n := range names {
		v := o.str(n, true)
		switch {
		case v == nil:
		case *v == "":
			o.errs.Add(n, domain.MsgBlank)
		default:
			out[i] = *v
		}
	}
	if err := o.err(nil); err != nil {
		return nil, err
	}
	return out, nil
}
