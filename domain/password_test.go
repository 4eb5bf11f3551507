package domain_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"healthrecord/domain"
)

// Django's messages, as its four default validators word them.
const (
	pwSimilarUser  = "The password is too similar to the username."
	pwSimilarEmail = "The password is too similar to the email address."
	pwShort        = "This password is too short. It must contain at least 8 characters."
	pwCommon       = "This password is too common."
	pwNumeric      = "This password is entirely numeric."
)

// The expected answers were computed with Django's validator code
// (difflib.SequenceMatcher.quick_ratio, exceeds_maximum_length_ratio,
// len, str.isdigit) run in Python on the same inputs.
func TestPasswordProblems(t *testing.T) {
	tests := []struct {
		name     string
		password string
		username string
		email    string
		want     []string
	}{
		{"acceptable", "correct-horse-battery", "alice", "alice@example.com", nil},
		{"too_short", "short1x", "alice", "alice@example.com", []string{pwShort}},
		{"exactly_minimum_length", "short1xy", "alice", "alice@example.com", nil},
		{"too_common", "password", "alice", "alice@example.com", []string{pwCommon}},
		{"common_ignores_case_and_surrounding_space", "  PassWord  ", "alice", "alice@example.com", []string{pwCommon}},
		{"entirely_numeric", "97350186", "alice", "alice@example.com", []string{pwNumeric}},
		{"common_and_numeric", "12345678", "alice", "alice@example.com", []string{pwCommon, pwNumeric}},
		{"unicode_digits_are_numeric", "١٢٣٤٥٦٧٨", "alice", "a@example.com", []string{pwNumeric}},
		{"similar_to_username", "johnsmith1", "johnsmith", "js@example.com", []string{pwSimilarUser}},
		{"similarity_ignores_case", "JOHNSMITH!", "johnsmith", "js@example.com", []string{pwSimilarUser}},
		// quick_ratio compares multisets of characters, not order.
		{"anagram_of_username", "ecilax12", "alice", "a@example.com", []string{pwSimilarUser}},
		{"below_similarity_threshold", "ecila-secret", "alice", "a@example.com", nil},
		{"similar_to_email_word", "example99", "zed", "mary.jones@example.com", []string{pwSimilarEmail}},
		{"similar_to_email_local_part", "maryjones", "zed", "mary.jones@example.com", []string{pwSimilarEmail}},
		// Ten times longer than the attribute: Django skips the comparison.
		{"much_longer_than_username", "xbox-overdrive-2024-bo", "bo", "b@example.com", nil},
		{"username_reported_before_email", "alice1234", "alice", "alice@alice.com", []string{pwSimilarUser}},
		{"every_validator_in_order", "12345678", "12345678", "n@example.com", []string{pwSimilarUser, pwCommon, pwNumeric}},
		{"similar_and_short", "alice7q", "alice", "a@example.com", []string{pwSimilarUser, pwShort}},
		{"length_counts_characters_7", "ééééééé", "alice", "a@example.com", []string{pwShort}},
		{"length_counts_characters_8", "éééééééé", "alice", "a@example.com", nil},
		{"no_attributes", "correct-horse", "", "", nil},
		{"blank", "", "alice", "a@example.com", []string{domain.MsgBlank}},
		{"null_character", "correct\x00horse", "alice", "a@example.com", []string{domain.MsgNullChars}},
		{"too_long", strings.Repeat("x", 4097), "alice", "a@example.com", []string{domain.MaxLengthMessage(4096)}},
		{"longest_allowed", strings.Repeat("xy", 2048), "alice", "a@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, domain.PasswordProblems(tt.password, tt.username, tt.email))
		})
	}
}
