package main

// The ceiling's answers, appended by hand without reflection or
// allocation. They must be byte for byte healthrecord's answers for the
// same rows (json.Marshal's output for the contract's record and comment
// objects): TestCeiling_SameBytesAsHealthrecord compares the two servers.
// This is a copy, not an import, because the benchmark must not depend on
// the internals it measures.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// appendRecordHead appends a record object up to and including the
// opening bracket of its comments; the caller appends the comments and
// "]}". doctor 0 is null.
func appendRecordHead(dst []byte, id, patient, doctor int64, title, content string, created, updated int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"patient":`...)
	dst = strconv.AppendInt(dst, patient, 10)
	dst = append(dst, `,"doctor":`...)
	if doctor == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, doctor, 10)
	}
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, title)
	dst = append(dst, `,"content":`...)
	dst = appendJSONString(dst, content)
	dst = append(dst, `,"created_at":`...)
	dst = appendNanos(dst, created)
	dst = append(dst, `,"updated_at":`...)
	dst = appendNanos(dst, updated)
	return append(dst, `,"comments":[`...)
}

// appendComment appends a comment object.
func appendComment(dst []byte, id, record, doctor int64, text string, created int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, `,"record":`...)
	dst = strconv.AppendInt(dst, record, 10)
	dst = append(dst, `,"doctor":`...)
	dst = strconv.AppendInt(dst, doctor, 10)
	dst = append(dst, `,"comment":`...)
	dst = appendJSONString(dst, text)
	dst = append(dst, `,"created_at":`...)
	dst = appendNanos(dst, created)
	return append(dst, '}')
}

// appendNanos appends Unix nanoseconds as quoted RFC 3339 UTC.
func appendNanos(dst []byte, n int64) []byte {
	dst = append(dst, '"')
	dst = time.Unix(0, n).UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// jsonSafe marks the ASCII bytes encoding/json (with its default HTML
// escaping) copies as they are.
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

// appendJSONString appends s quoted and escaped as json.Marshal does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
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

// hs256Header is the only JOSE header the ceiling issues and accepts: the
// algorithm is pinned by comparing the whole segment.
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// hs256 verifies the ceiling's access tokens: header pinned, HMAC-SHA256
// signature, exp, token_type and user_id, with pooled MACs and the
// caller's scratch space, so a verification allocates nothing.
type hs256 struct {
	key  []byte
	macs sync.Pool
}

func newHS256(key []byte) hs256 {
	return hs256{key: key, macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// signHS256 makes an access token for userID, valid for ttl from now,
// with the claims healthrecord's access tokens carry.
func signHS256(key []byte, userID int64, now time.Time, ttl time.Duration) string {
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims := `{"exp":` + strconv.FormatInt(now.Add(ttl).Unix(), 10) + `,"iat":` + strconv.FormatInt(now.Unix(), 10) +
		`,"jti":"` + hex.EncodeToString(jti) + `","token_type":"access","user_id":` + strconv.FormatInt(userID, 10) + `}`
	input := hs256Header + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify checks tok at now (Unix seconds) and returns its user_id.
// scratch holds the copied token, the decoded claims and the MACs.
func (v *hs256) verify(tok string, now int64, scratch *[1024]byte) (int64, bool) {
	if len(tok) > 600 || len(tok) < len(hs256Header)+2 || tok[:len(hs256Header)] != hs256Header || tok[len(hs256Header)] != '.' {
		return 0, false
	}
	buf := scratch[:]
	n := copy(buf, tok)
	t := buf[:n]
	dot := bytes.LastIndexByte(t, '.')
	if dot <= len(hs256Header) {
		return 0, false
	}
	input, sig := t[:dot], t[dot+1:]
	rest := buf[n:]
	var given [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(sig)) != len(given) {
		return 0, false
	}
	if _, err := base64.RawURLEncoding.Decode(given[:], sig); err != nil {
		return 0, false
	}
	m := v.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(input)
	want := m.Sum(rest[:0])
	v.macs.Put(m)
	if !hmac.Equal(want, given[:]) {
		return 0, false
	}
	rest = rest[len(want):]
	payload := input[len(hs256Header)+1:]
	if base64.RawURLEncoding.DecodedLen(len(payload)) > len(rest) {
		return 0, false
	}
	cn, err := base64.RawURLEncoding.Decode(rest, payload)
	if err != nil {
		return 0, false
	}
	claims := rest[:cn]
	// The signature is good, so the claims are the ceiling's own shape.
	if !bytes.Contains(claims, []byte(`"token_type":"access"`)) {
		return 0, false
	}
	exp, ok := intClaim(claims, `"exp":`)
	if !ok || exp <= now {
		return 0, false
	}
	return intClaim(claims, `"user_id":`)
}

// intClaim is the non-negative integer after name in claims.
func intClaim(claims []byte, name string) (int64, bool) {
	i := bytes.Index(claims, []byte(name))
	if i < 0 {
		return 0, false
	}
	var v int64
	digits := 0
	for _, c := range claims[i+len(name):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
		digits++
	}
	return v, digits > 0 && digits < 19
}
