package domain_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want domain.Code
	}{
		{"nil", nil, ""},
		{"plain_error_is_internal", io.EOF, domain.EInternal},
		{"domain_error", domain.NotFound(), domain.ENotFound},
		{"wrapped_once", fmt.Errorf("load record: %w", domain.NotFound()), domain.ENotFound},
		{"wrapped_twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", domain.Forbidden("no"))), domain.EForbidden},
		{"joined_first_domain_error_wins", errors.Join(io.EOF, domain.Errorf(domain.EConflict, "x"), domain.NotFound()), domain.EConflict},
		{"wrapped_plain_error", fmt.Errorf("x: %w", io.EOF), domain.EInternal},
		{"field_error", domain.FieldError("title", domain.MsgBlank), domain.EInvalid},
		{"throttled", domain.Throttled(time.Second), domain.EThrottled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, domain.ErrorCode(tt.err))
		})
	}
}

func TestError_Error(t *testing.T) {
	assert.Equal(t, "not_found: Not found.", domain.NotFound().Error())
	assert.Equal(t, "invalid: map[title:[This field may not be blank.]]", domain.FieldError("title", domain.MsgBlank).Error())
	assert.Equal(t, "conflict: event 3 is not dead", domain.Errorf(domain.EConflict, "event %d is not dead", 3).Error())
}

func TestFieldErrors(t *testing.T) {
	t.Run("empty_is_nil", func(t *testing.T) {
		assert.NoError(t, domain.FieldErrors{}.Err())
	})
	t.Run("collects_per_field_in_order", func(t *testing.T) {
		fe := domain.FieldErrors{}
		fe.Add("password", "one")
		fe.Add("password", "two")
		fe.Add("email", "three")
		var e *domain.Error
		require.ErrorAs(t, fe.Err(), &e)
		assert.Equal(t, domain.EInvalid, e.Code)
		assert.Equal(t, "Invalid input.", e.Message)
		assert.Equal(t, map[string][]string{"password": {"one", "two"}, "email": {"three"}}, e.Fields)
	})
}

func TestErrorConstructors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want domain.Error
	}{
		{"field_error", domain.FieldError("doctor", "x"),
			domain.Error{Code: domain.EInvalid, Message: "Invalid input.", Fields: map[string][]string{"doctor": {"x"}}}},
		{"does_not_exist", domain.DoesNotExist("doctor", 7),
			domain.Error{Code: domain.EInvalid, Message: "Invalid input.", Fields: map[string][]string{"doctor": {`Invalid pk "7" - object does not exist.`}}}},
		{"forbidden", domain.Forbidden("nope"), domain.Error{Code: domain.EForbidden, Message: "nope"}},
		{"not_found", domain.NotFound(), domain.Error{Code: domain.ENotFound, Message: "Not found."}},
		{"token_not_valid", domain.TokenNotValid(),
			domain.Error{Code: domain.EUnauthorized, Message: "Given token not valid for any token type", BadToken: true}},
		{"refresh_not_valid", domain.RefreshNotValid(),
			domain.Error{Code: domain.EUnauthorized, Message: "Token is invalid or expired", BadToken: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *domain.Error
			require.ErrorAs(t, tt.err, &e)
			assert.Equal(t, tt.want, *e)
		})
	}
	assert.Equal(t, "Ensure this field has no more than 100 characters.", domain.MaxLengthMessage(100))
}
