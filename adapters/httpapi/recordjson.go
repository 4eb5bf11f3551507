package httpapi

import (
	"strconv"
	"time"
	"unicode/utf8"

	"healthrecord/domain"
)

// Records and comments are the bodies of the hot paths (a patient's list,
// one record), so they are appended by hand straight from the domain
// values instead of going through views and encoding/json's reflection.
// The output must stay byte for byte what json.Marshal wrote of the
// record and comment views: recordjson_test.go holds that oracle.

// appendRecord appends r as the contract's record object.
func appendRecord(dst []byte, r domain.Record) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, r.ID, 10)
	dst = append(dst, `,"patient":`...)
	dst = strconv.AppendInt(dst, r.PatientID, 10)
	dst = append(dst, `,"doctor":`...)
	if r.DoctorID == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, r.DoctorID, 10)
	}
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, r.Title)
	dst = append(dst, `,"content":`...)
	dst = appendJSONString(dst, r.Content)
	dst = append(dst, `,"created_at":`...)
	dst = appendJSONTime(dst, r.CreatedAt)
	dst = append(dst, `,"updated_at":`...)
	dst = appendJSONTime(dst, r.UpdatedAt)
	dst = append(dst, `,"comments":`...)
	dst = appendArray(dst, r.Comments, appendComment) // [] when there are none
	return append(dst, '}')
}

// appendComment appends c as the contract's comment object.
func appendComment(dst []byte, c domain.Comment) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, c.ID, 10)
	dst = append(dst, `,"record":`...)
	dst = strconv.AppendInt(dst, c.RecordID, 10)
	dst = append(dst, `,"doctor":`...)
	dst = strconv.AppendInt(dst, c.DoctorID, 10)
	dst = append(dst, `,"comment":`...)
	dst = appendJSONString(dst, c.Text)
	dst = append(dst, `,"created_at":`...)
	dst = appendJSONTime(dst, c.CreatedAt)
	return append(dst, '}')
}

// appendArray appends items as a JSON array; nil is [], never null.
func appendArray[T any](dst []byte, items []T, appendItem func([]byte, T) []byte) []byte {
	dst = append(dst, '[')
	for i := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, items[i])
	}
	return append(dst, ']')
}

// appendJSONTime appends t as timeJSON does, quoted. RFC 3339 text is
// digits and -:.TZ only, so it needs no escaping.
func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// jsonSafe marks the ASCII bytes encoding/json (with its default HTML
// escaping) copies as they are: printable, but not " \ < > &.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		safe[b] = true
	}
	for _, b := range `"\<>&` {
		safe[b] = false
	}
	return safe
}()

const lowerHex = "0123456789abcdef"

// appendJSONString appends s quoted and escaped exactly as json.Marshal
// does: " and \ backslashed, \b \f \n \r \t by name, other control bytes
// and < > & as \u00xx, U+2028 and U+2029 as \u2028 and \u2029, and each
// byte of invalid UTF-8 as \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is safe and not yet appended
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[b>>4], lowerHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The bodies writeJSON appends without reflection.
type (
	recordBody   domain.Record
	commentBody  domain.Comment
	recordsBody  []domain.Record
	commentsBody []domain.Comment
)

func (r recordBody) appendJSON(dst []byte) []byte  { return appendRecord(dst, domain.Record(r)) }
func (c commentBody) appendJSON(dst []byte) []byte { return appendComment(dst, domain.Comment(c)) }
func (rs recordsBody) appendJSON(dst []byte) []byte {
	return appendArray(dst, rs, appendRecord)
}
func (cs commentsBody) appendJSON(dst []byte) []byte {
	return appendArray(dst, cs, appendComment)
}
