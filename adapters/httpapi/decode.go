package httpapi

import (
	"net/http"

	"healthrecord/domain"
)

// The request decoders: each reads one body shape into what the app takes.
// They check shapes and types only; the values are validated once, by the
// domain, in the use case. Only when a decoder already refuses the body,
// so that the use case never runs, does it ask the domain about the fields
// that did parse, so a client hears of every field at once, as DRF does.

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
	if o.failed() {
		return domain.RecordChange{}, o.err(c.Validate(full))
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
	if o.failed() {
		return commentInput{}, o.err(domain.ValidateCommentText(in.Text))
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
		if role, ok := domain.ParseRole(*v); ok {
			reg.Role = role
		} else {
			o.errs.Add("role", domain.InvalidChoice(*v))
		}
	}
	if o.failed() {
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
