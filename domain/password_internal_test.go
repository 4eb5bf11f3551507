package domain

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The edges of the difflib helpers that PasswordProblems never reaches,
// because it skips empty attribute parts first.
func TestPasswordHelpers_EmptyInputs(t *testing.T) {
	assert.False(t, exceedsLengthRatio("password", 0.7, ""))
	assert.Equal(t, 1.0, quickRatio("", ""))
	assert.Equal(t, 0.0, quickRatio("abc", "xyz"))
	assert.False(t, isNumeric(""))
}
