// Package username is the one rule for comparing usernames, shared by the
// store (uniqueness, lookup) and the sign-in throttle (one count per
// account, however its name is spelled): Unicode NFKC normalisation and
// full case folding, so "ａｌｉｃｅ", "Alice" and "alice" are one name.
package username

import (
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Key is the form of name that is compared. Folding can denormalise
// (e.g. "ǰ" folds to "ǰ" with a combining caron), so the result is
// normalised again.
func Key(name string) string {
	// A Caser keeps state; one per call is safe from many goroutines.
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(name)))
}
