package domain

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is an account kind. Only the three constants below are roles: build
// one from outside input with ParseRole, never by conversion.
type Role string

// The roles.
const (
	RolePatient Role = "PATIENT"
	RoleDoctor  Role = "DOCTOR"
	RoleAdmin   Role = "ADMIN"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r == RolePatient || r == RoleDoctor || r == RoleAdmin }

// ParseRole reads a role from outside input (a request, a token, a flag):
// "" and false for anything that is not one of the three roles.
func ParseRole(s string) (Role, bool) {
	if r := Role(s); r.Valid() {
		return r, true
	}
	return "", false
}

// Actor is who is asking: an authenticated user's id and role. It is passed
// explicitly to every use case; nothing reads it from a context.
type Actor struct {
	ID   int64
	Role Role
	// SessionID is the sign-in the actor's token belongs to.
	SessionID string
	// RequestID and RemoteAddr say where the request came from, for the
	// audit trail.
	RequestID  string
	RemoteAddr string
}

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string
	Role         Role
	Approved     bool // meaningful for doctors: only approved doctors may be assigned
	Active       bool
	PasswordHash string
	CreatedAt    time.Time
}

// Assignability is the "assignable doctor" rule as data, so that checking
// one user (User.Assignable) and listing the doctors one may choose (the
// app's store filter) cannot drift apart.
type Assignability struct {
	Role     Role
	Approved bool
	Active   bool
}

// AssignableDoctor is who records may be assigned to: an approved, active
// doctor.
var AssignableDoctor = Assignability{Role: RoleDoctor, Approved: true, Active: true}

// Assignable reports whether records may be assigned to u.
func (u User) Assignable() bool {
	a := AssignableDoctor
	return u.Role == a.Role && u.Approved == a.Approved && u.Active == a.Active
}

const maxUsernameLen = 150

// UsernameLengthOK reports whether name is short enough to be anyone's
// username; sign-in checks it before any lookup or throttle work.
func UsernameLengthOK(name string) bool {
	return len(name) <= 4*maxUsernameLen && utf8.RuneCountInString(name) <= maxUsernameLen
}

// Django's UnicodeUsernameValidator.
var usernameRE = regexp.MustCompile(`^[\p{L}\p{N}_.@+-]+$`)

// A pragmatic version of Django's EmailValidator.
var emailRE = regexp.MustCompile(`^[A-Za-z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$`)

// Registration is what someone asks for when signing up.
type Registration struct {
	Username string
	Email    string
	Password string
	Role     Role
}

// Validate checks a registration the way Django's user model and default
// password validators would, returning EInvalid with every field's messages.
// Roles other than PATIENT and DOCTOR are refused: admins come from the CLI.
func (r Registration) Validate() error {
	fe := FieldErrors{}
	ValidateUsername(fe, r.Username)
	switch {
	case strings.TrimSpace(r.Email) == "":
		fe.Add("email", MsgBlank)
	case !emailRE.MatchString(r.Email) || len(r.Email) > 254:
		fe.Add("email", "Enter a valid email address.")
	}
	if r.Role != RolePatient && r.Role != RoleDoctor {
		fe.Add("role", InvalidChoice(string(r.Role)))
	}
	for _, m := range PasswordProblems(r.Password, r.Username, r.Email) {
		fe.Add("password", m)
	}
	return fe.Err()
}

// ValidateUsername adds Django's username messages for name to fe.
func ValidateUsername(fe FieldErrors, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		fe.Add("username", MsgBlank)
	case utf8.RuneCountInString(name) > maxUsernameLen:
		fe.Add("username", MaxLengthMessage(maxUsernameLen))
	case !usernameRE.MatchString(name):
		fe.Add("username", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.")
	}
}

// UsernameTaken is the error for a duplicate username.
func UsernameTaken() error {
	return FieldError("username", "A user with that username already exists.")
}

// NewUser builds an account from a registration, which it validates, and a
// password hash (the app sets it after, so that nothing invalid is hashed). Doctors start unapproved unless autoApprove is set.
func NewUser(r Registration, passwordHash string, autoApprove bool, now time.Time) (User, error) {
	if err := r.Validate(); err != nil {
		return User{}, err
	}
	return User{
		Username:     r.Username,
		Email:        r.Email,
		Role:         r.Role,
		Approved:     r.Role != RoleDoctor || autoApprove,
		Active:       true,
		PasswordHash: passwordHash,
		CreatedAt:    now.UTC(),
	}, nil
}
