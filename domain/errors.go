// Package domain holds healthrecord's entities and policy rules as plain Go:
// no SQL, no HTTP, no JSON, no implicit clock or randomness.
package domain

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an Error; the HTTP adapter maps each code to one status.
type Code string

// The error codes. Every port and use case documents which it returns.
const (
	EInvalid      Code = "invalid"      // field errors or a bad request
	EUnauthorized Code = "unauthorized" // no or bad credentials
	EForbidden    Code = "forbidden"    // visible, but not allowed
	ENotFound     Code = "not_found"    // absent or not visible
	EConflict     Code = "conflict"     // state does not allow it
	EThrottled    Code = "throttled"    // too many attempts
	EQuota        Code = "quota"        // a storage quota would be exceeded
	EInternal     Code = "internal"     // a bug or an outage
)

// Error is the one error type the application speaks: a code, a message
// for people, per-field messages, and the little typed data an adapter
// needs to answer (how it answers is the adapter's business).
type Error struct {
	Code    Code
	Message string
	// Fields holds per-field validation messages (EInvalid only).
	Fields map[string][]string
	// BadToken marks an EUnauthorized error about a token that was
	// presented (bad, expired, used or revoked), as against credentials
	// that are missing or wrong.
	BadToken bool
	// Wait is how long until the refused attempt may succeed (EThrottled
	// only).
	Wait time.Duration
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("%s: %v", e.Code, e.Fields)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// QuotaExceeded is the error for a write over the patient's storage quota.
func QuotaExceeded() error { return &Error{Code: EQuota, Message: "Storage quota exceeded."} }

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error and "" for nil.
func ErrorCode(err error) Code {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// FieldErrors collects validation messages per field, in DRF's shape.
type FieldErrors map[string][]string

// Add records msg for field.
func (f FieldErrors) Add(field, msg string) { f[field] = append(f[field], msg) }

// Err returns nil when no message was added, else an EInvalid *Error.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Code: EInvalid, Message: "Invalid input.", Fields: map[string][]string(f)}
}

// FieldError is a one-field EInvalid error.
func FieldError(field, msg string) error {
	return &Error{Code: EInvalid, Message: "Invalid input.", Fields: map[string][]string{field: {msg}}}
}

// DoesNotExist is DRF's answer for a primary key that names nothing the
// caller may see; healthrecord also uses it for what exists but is hidden,
// so ids cannot be probed.
func DoesNotExist(field string, id int64) error {
	return FieldError(field, fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", id))
}

// Messages with DRF's and SimpleJWT's exact wording.
const (
	MsgRequired       = "This field is required."
	MsgBlank          = "This field may not be blank."
	MsgNullChars      = "Null characters are not allowed."
	MsgNoPermission   = "You do not have permission to perform this action."
	MsgNotFound       = "Not found."
	MsgTokenNotValid  = "Given token not valid for any token type"
	MsgRefreshInvalid = "Token is invalid or expired"
	MsgBadCredentials = "No active account found with the given credentials"
)

// InvalidChoice is DRF's message for a value outside a field's choices.
func InvalidChoice(v string) string { return `"` + v + `" is not a valid choice.` }

// MaxLengthMessage is DRF's max_length message.
func MaxLengthMessage(n int) string {
	return fmt.Sprintf("Ensure this field has no more than %d characters.", n)
}

// Throttled is the EThrottled error for an attempt that may succeed after
// wait; it carries no message: the adapter words it.
func Throttled(wait time.Duration) error { return &Error{Code: EThrottled, Wait: wait} }

// Forbidden is an EForbidden error with the given detail.
func Forbidden(msg string) error { return &Error{Code: EForbidden, Message: msg} }

// NotFound is the ENotFound error with DRF's detail.
func NotFound() error { return &Error{Code: ENotFound, Message: MsgNotFound} }

// TokenNotValid is the 401 for a bad, expired or revoked access token.
func TokenNotValid() error {
	return &Error{Code: EUnauthorized, Message: MsgTokenNotValid, BadToken: true}
}

// RefreshNotValid is the 401 for a bad, used or revoked refresh token.
func RefreshNotValid() error {
	return &Error{Code: EUnauthorized, Message: MsgRefreshInvalid, BadToken: true}
}
