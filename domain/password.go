package domain

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinPasswordLength is Django's MinimumLengthValidator default.
const MinPasswordLength = 8

// MaxPasswordLength bounds the work a hash does; argon2 and bcrypt gain
// nothing from longer input and a huge one is a denial-of-service vector.
// A longer password can never have been set, so it is simply wrong.
const MaxPasswordLength = 4096

//go:embed common_passwords.txt
var commonPasswordsText string

var commonPasswords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		if p := strings.TrimSpace(line); p != "" {
			m[strings.ToLower(p)] = struct{}{}
		}
	}
	return m
}()

var nonWord = regexp.MustCompile(`\W+`)

// PasswordProblems returns the messages Django's four default validators
// give for password, in their order; none means the password is acceptable.
func PasswordProblems(password, username, email string) []string {
	var out []string
	if password == "" || invisible(password) {
		return []string{MsgBlank}
	}
	if strings.ContainsRune(password, 0) {
		return []string{MsgNullChars}
	}
	if len(password) > MaxPasswordLength {
		return []string{MaxLengthMessage(MaxPasswordLength)}
	}
	if attr := similarAttribute(password, username, email); attr != "" {
		out = append(out, fmt.Sprintf("The password is too similar to the %s.", attr))
	}
	if utf8.RuneCountInString(password) < MinPasswordLength {
		out = append(out, fmt.Sprintf("This password is too short. It must contain at least %d characters.", MinPasswordLength))
	}
	if _, ok := commonPasswords[strings.ToLower(strings.TrimSpace(password))]; ok {
		out = append(out, "This password is too common.")
	}
	if isNumeric(password) {
		out = append(out, "This password is entirely numeric.")
	}
	return out
}

// invisible reports whether s shows nothing: only whitespace, format and
// control characters, combining marks or blank-looking letters. Such a
// password is one nobody can read back or type reliably.
func invisible(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsSpace(r), unicode.In(r, unicode.Cf, unicode.Cc, unicode.Mn, unicode.Me, unicode.Zs):
		case r == '\u115f', r == '\u1160', r == '\u3164', r == '\uffa0', r == '\u2800':
			// Hangul fillers and the blank Braille pattern render as nothing.
		default:
			return false
		}
	}
	return true
}

func isNumeric(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return s != ""
}

// similarAttribute follows Django's UserAttributeSimilarityValidator: the
// password is too similar to an attribute (or a word of it) when difflib's
// quick_ratio reaches 0.7.
func similarAttribute(password, username, email string) string {
	const maxSimilarity = 0.7
	pw := strings.ToLower(password)
	for _, a := range []struct{ name, value string }{{"username", username}, {"email address", email}} {
		if a.value == "" {
			continue
		}
		parts := append(nonWord.Split(a.value, -1), a.value)
		for _, part := range parts {
			part = strings.ToLower(part)
			if part == "" || exceedsLengthRatio(pw, maxSimilarity, part) {
				continue
			}
			if quickRatio(pw, part) >= maxSimilarity {
				return a.name
			}
		}
	}
	return ""
}

// exceedsLengthRatio is Django's shortcut: a password much longer than the
// attribute cannot be too similar to it.
func exceedsLengthRatio(password string, maxSimilarity float64, value string) bool {
	pwLen := utf8.RuneCountInString(password)
	length := utf8.RuneCountInString(value)
	if length == 0 {
		return false
	}
	return float64(pwLen) >= 10*float64(length) && float64(length) < maxSimilarity*float64(pwLen)
}

// quickRatio is difflib.SequenceMatcher.quick_ratio: an upper bound of the
// similarity from the multiset of shared characters.
func quickRatio(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	if len(ra)+len(rb) == 0 {
		return 1
	}
	avail := map[rune]int{}
	for _, r := range rb {
		avail[r]++
	}
	matches := 0
	for _, r := range ra {
		if avail[r] > 0 {
			avail[r]--
			matches++
		}
	}
	return 2 * float64(matches) / float64(len(ra)+len(rb))
}
