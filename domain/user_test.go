package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

const msgBadUsername = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."

func TestRole_Valid(t *testing.T) {
	for _, r := range []domain.Role{domain.RolePatient, domain.RoleDoctor, domain.RoleAdmin} {
		assert.True(t, r.Valid(), r)
	}
	for _, r := range []domain.Role{"", "patient", "NURSE"} {
		assert.False(t, r.Valid(), r)
	}
}

func TestUser_Assignable(t *testing.T) {
	tests := []struct {
		name string
		user domain.User
		want bool
	}{
		{"approved_active_doctor", domain.User{Role: domain.RoleDoctor, Approved: true, Active: true}, true},
		{"unapproved_doctor", domain.User{Role: domain.RoleDoctor, Active: true}, false},
		{"inactive_doctor", domain.User{Role: domain.RoleDoctor, Approved: true}, false},
		{"patient", domain.User{Role: domain.RolePatient, Approved: true, Active: true}, false},
		{"admin", domain.User{Role: domain.RoleAdmin, Approved: true, Active: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, tt.user.Assignable()) })
	}
}

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		name     string
		username string
		want     []string
	}{
		{"plain", "alice", nil},
		{"every_allowed_symbol", "a.b+c-d_e@f", nil},
		{"unicode_letters_and_digits", "Zoë٣", nil},
		{"blank", "", []string{domain.MsgBlank}},
		{"whitespace_only", "  \t", []string{domain.MsgBlank}},
		{"space_inside", "alice smith", []string{msgBadUsername}},
		{"punctuation", "alice!", []string{msgBadUsername}},
		{"slash", "a/b", []string{msgBadUsername}},
		{"newline", "alice\n", []string{msgBadUsername}},
		{"150_characters_multibyte", strings.Repeat("é", 150), nil},
		{"151_characters", strings.Repeat("é", 151), []string{domain.MaxLengthMessage(150)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := domain.FieldErrors{}
			domain.ValidateUsername(fe, tt.username)
			assert.Equal(t, tt.want, fe["username"])
		})
	}
}

func TestRegistration_Validate(t *testing.T) {
	valid := domain.Registration{Username: "alice", Email: "alice@example.com", Password: "correct-horse-battery", Role: domain.RolePatient}
	with := func(f func(*domain.Registration)) domain.Registration {
		r := valid
		f(&r)
		return r
	}
	tests := []struct {
		name string
		reg  domain.Registration
		want map[string][]string // nil: valid
	}{
		{"patient", valid, nil},
		{"doctor", with(func(r *domain.Registration) { r.Role = domain.RoleDoctor }), nil},
		{"admin_refused", with(func(r *domain.Registration) { r.Role = domain.RoleAdmin }),
			map[string][]string{"role": {`"ADMIN" is not a valid choice.`}}},
		{"no_role", with(func(r *domain.Registration) { r.Role = "" }),
			map[string][]string{"role": {`"" is not a valid choice.`}}},
		{"lowercase_role", with(func(r *domain.Registration) { r.Role = "patient" }),
			map[string][]string{"role": {`"patient" is not a valid choice.`}}},
		{"email_blank", with(func(r *domain.Registration) { r.Email = " " }),
			map[string][]string{"email": {domain.MsgBlank}}},
		{"email_without_at", with(func(r *domain.Registration) { r.Email = "alice.example.com" }),
			map[string][]string{"email": {"Enter a valid email address."}}},
		{"email_without_domain_dot", with(func(r *domain.Registration) { r.Email = "alice@example" }),
			map[string][]string{"email": {"Enter a valid email address."}}},
		{"email_with_space", with(func(r *domain.Registration) { r.Email = "alice smith@example.com" }),
			map[string][]string{"email": {"Enter a valid email address."}}},
		{"email_too_long", with(func(r *domain.Registration) {
			r.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"
		}),
			map[string][]string{"email": {"Enter a valid email address."}}},
		{"email_plus_and_subdomain", with(func(r *domain.Registration) { r.Email = "alice+hr@mail.example.co.uk" }), nil},
		{"bad_username", with(func(r *domain.Registration) { r.Username = "alice smith" }),
			map[string][]string{"username": {msgBadUsername}}},
		{"weak_password", with(func(r *domain.Registration) { r.Password = "8203" }),
			map[string][]string{"password": {pwShort, pwNumeric}}},
		{"password_like_username", with(func(r *domain.Registration) { r.Password = "alice123" }),
			map[string][]string{"password": {pwSimilarUser}}},
		{"everything_wrong_at_once", domain.Registration{Username: "", Email: "nope", Password: "", Role: domain.RoleAdmin},
			map[string][]string{
				"username": {domain.MsgBlank},
				"email":    {"Enter a valid email address."},
				"role":     {`"ADMIN" is not a valid choice.`},
				"password": {domain.MsgBlank},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.reg.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			var e *domain.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, domain.EInvalid, e.Code)
			assert.Equal(t, tt.want, e.Fields)
		})
	}
}

func TestNewUser(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	reg := func(role domain.Role) domain.Registration {
		return domain.Registration{Username: "bob", Email: "bob@example.com", Password: "correct-horse-battery", Role: role}
	}
	tests := []struct {
		name         string
		role         domain.Role
		autoApprove  bool
		wantApproved bool
	}{
		{"patient", domain.RolePatient, false, true},
		{"doctor_starts_unapproved", domain.RoleDoctor, false, false},
		{"doctor_auto_approved", domain.RoleDoctor, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := domain.NewUser(reg(tt.role), "argon2id$hash", tt.autoApprove, now)
			require.NoError(t, err)
			assert.Equal(t, domain.User{
				Username: "bob", Email: "bob@example.com", Role: tt.role, Approved: tt.wantApproved,
				Active: true, PasswordHash: "argon2id$hash", CreatedAt: now.UTC(),
			}, u)
			assert.Equal(t, time.UTC, u.CreatedAt.Location())
		})
	}
	t.Run("invalid", func(t *testing.T) {
		_, err := domain.NewUser(reg(domain.RoleAdmin), "h", true, now)
		assert.Equal(t, domain.EInvalid, domain.ErrorCode(err))
	})
}

func TestUsernameTaken(t *testing.T) {
	var e *domain.Error
	require.ErrorAs(t, domain.UsernameTaken(), &e)
	assert.Equal(t, domain.EInvalid, e.Code)
	assert.Equal(t, map[string][]string{"username": {"A user with that username already exists."}}, e.Fields)
}

func TestParseRole(t *testing.T) {
	for _, r := range []domain.Role{domain.RolePatient, domain.RoleDoctor, domain.RoleAdmin} {
		got, ok := domain.ParseRole(string(r))
		assert.True(t, ok)
		assert.Equal(t, r, got)
	}
	for _, s := range []string{"", "patient", "ROOT", "ADMIN "} {
		got, ok := domain.ParseRole(s)
		assert.False(t, ok, s)
		assert.Equal(t, domain.Role(""), got, s)
	}
}

func TestAssignable_MatchesTheRule(t *testing.T) {
	rule := domain.AssignableDoctor
	assert.True(t, domain.User{Role: rule.Role, Approved: rule.Approved, Active: rule.Active}.Assignable())
	assert.False(t, domain.User{Role: domain.RoleDoctor, Approved: false, Active: true}.Assignable())
	assert.False(t, domain.User{Role: domain.RoleDoctor, Approved: true, Active: false}.Assignable())
	assert.False(t, domain.User{Role: domain.RolePatient, Approved: true, Active: true}.Assignable())
}
