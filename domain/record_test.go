package domain_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

func ptr(s string) *string { return &s }

// fieldsOf returns the field messages of an EInvalid error, nil for nil.
func fieldsOf(t *testing.T, err error) map[string][]string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *domain.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, domain.EInvalid, e.Code)
	return e.Fields
}

func TestRecordChange_Validate(t *testing.T) {
	tooLong := domain.MaxLengthMessage(domain.MaxTitleLen)
	tests := []struct {
		name   string
		change domain.RecordChange
		full   bool
		want   map[string][]string
	}{
		{"full_requires_both", domain.RecordChange{}, true,
			map[string][]string{"title": {domain.MsgRequired}, "content": {domain.MsgRequired}}},
		{"partial_requires_nothing", domain.RecordChange{}, false, nil},
		{"full_missing_content", domain.RecordChange{Title: ptr("t")}, true,
			map[string][]string{"content": {domain.MsgRequired}}},
		{"blank_title", domain.RecordChange{Title: ptr("")}, false,
			map[string][]string{"title": {domain.MsgBlank}}},
		{"whitespace_title", domain.RecordChange{Title: ptr(" \t\n")}, false,
			map[string][]string{"title": {domain.MsgBlank}}},
		{"null_in_title", domain.RecordChange{Title: ptr("a\x00b")}, false,
			map[string][]string{"title": {domain.MsgNullChars}}},
		{"null_in_content", domain.RecordChange{Content: ptr("\x00")}, false,
			map[string][]string{"content": {domain.MsgNullChars}}},
		{"title_100_ascii", domain.RecordChange{Title: ptr(strings.Repeat("a", 100))}, false, nil},
		{"title_101_ascii", domain.RecordChange{Title: ptr(strings.Repeat("a", 101))}, false,
			map[string][]string{"title": {tooLong}}},
		// 100 two-byte characters are 200 bytes and still fit.
		{"title_100_two_byte_chars", domain.RecordChange{Title: ptr(strings.Repeat("é", 100))}, false, nil},
		{"title_101_two_byte_chars", domain.RecordChange{Title: ptr(strings.Repeat("é", 101))}, false,
			map[string][]string{"title": {tooLong}}},
		{"title_100_four_byte_chars", domain.RecordChange{Title: ptr(strings.Repeat("🩺", 100))}, false, nil},
		{"title_101_four_byte_chars", domain.RecordChange{Title: ptr(strings.Repeat("🩺", 101))}, false,
			map[string][]string{"title": {tooLong}}},
		{"content_at_limit", domain.RecordChange{Content: ptr(strings.Repeat("日", domain.MaxContentLen))}, false, nil},
		{"content_over_limit", domain.RecordChange{Content: ptr(strings.Repeat("日", domain.MaxContentLen+1))}, false,
			map[string][]string{"content": {domain.MaxLengthMessage(domain.MaxContentLen)}}},
		{"both_fields_reported", domain.RecordChange{Title: ptr(""), Content: ptr("a\x00")}, true,
			map[string][]string{"title": {domain.MsgBlank}, "content": {domain.MsgNullChars}}},
		{"doctor_alone_is_valid_patch", domain.RecordChange{SetDoctor: true, DoctorID: 3}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, fieldsOf(t, tt.change.Validate(tt.full)))
		})
	}
}

func TestNewRecord(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 10, time.FixedZone("X", -5*3600))
	t.Run("with_doctor", func(t *testing.T) {
		r, err := domain.NewRecord(1, domain.RecordChange{Title: ptr("t"), Content: ptr("c"), SetDoctor: true, DoctorID: 10}, now)
		require.NoError(t, err)
		assert.Equal(t, domain.Record{PatientID: 1, DoctorID: 10, Title: "t", Content: "c", CreatedAt: now.UTC(), UpdatedAt: now.UTC()}, r)
		assert.Equal(t, time.UTC, r.CreatedAt.Location())
	})
	t.Run("without_doctor", func(t *testing.T) {
		r, err := domain.NewRecord(1, domain.RecordChange{Title: ptr("t"), Content: ptr("c")}, now)
		require.NoError(t, err)
		assert.Zero(t, r.DoctorID)
	})
	t.Run("null_doctor", func(t *testing.T) {
		r, err := domain.NewRecord(1, domain.RecordChange{Title: ptr("t"), Content: ptr("c"), SetDoctor: true}, now)
		require.NoError(t, err)
		assert.Zero(t, r.DoctorID)
	})
	t.Run("invalid", func(t *testing.T) {
		_, err := domain.NewRecord(1, domain.RecordChange{Title: ptr("t")}, now)
		assert.Equal(t, map[string][]string{"content": {domain.MsgRequired}}, fieldsOf(t, err))
	})
}

func TestRecord_Apply(t *testing.T) {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2024, 2, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	base := func(doctor int64) domain.Record {
		return domain.Record{ID: 5, PatientID: 1, DoctorID: doctor, Title: "old title", Content: "old content", CreatedAt: created, UpdatedAt: created}
	}
	tests := []struct {
		name         string
		doctor       int64 // the record's doctor before
		change       domain.RecordChange
		full         bool
		wantTitle    string
		wantContent  string
		wantDoctor   int64
		wantAssigned bool
	}{
		{"patch_title_only", 10, domain.RecordChange{Title: ptr("new")}, false, "new", "old content", 10, false},
		{"patch_content_only", 10, domain.RecordChange{Content: ptr("new")}, false, "old title", "new", 10, false},
		{"patch_nothing", 10, domain.RecordChange{}, false, "old title", "old content", 10, false},
		{"put_keeps_doctor_when_absent", 10, domain.RecordChange{Title: ptr("t2"), Content: ptr("c2")}, true, "t2", "c2", 10, false},
		{"assign_unassigned", 0, domain.RecordChange{SetDoctor: true, DoctorID: 7}, false, "old title", "old content", 7, true},
		{"change_to_another_doctor", 10, domain.RecordChange{SetDoctor: true, DoctorID: 11}, false, "old title", "old content", 11, true},
		{"same_doctor_again", 10, domain.RecordChange{SetDoctor: true, DoctorID: 10}, false, "old title", "old content", 10, false},
		{"unassign", 10, domain.RecordChange{SetDoctor: true, DoctorID: 0}, false, "old title", "old content", 0, false},
		{"unassign_unassigned", 0, domain.RecordChange{SetDoctor: true}, false, "old title", "old content", 0, false},
		{"put_with_new_doctor", 10, domain.RecordChange{Title: ptr("t2"), Content: ptr("c2"), SetDoctor: true, DoctorID: 12}, true, "t2", "c2", 12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base(tt.doctor)
			assigned, err := r.Apply(tt.change, tt.full, now)
			require.NoError(t, err)
			assert.Equal(t, tt.wantAssigned, assigned)
			assert.Equal(t, domain.Record{
				ID: 5, PatientID: 1, DoctorID: tt.wantDoctor, Title: tt.wantTitle, Content: tt.wantContent,
				CreatedAt: created, UpdatedAt: now.UTC(),
			}, r)
		})
	}
}

func TestRecord_Apply_InvalidLeavesRecordUnchanged(t *testing.T) {
	tests := []struct {
		name   string
		change domain.RecordChange
		full   bool
	}{
		{"patch_blank_title", domain.RecordChange{Title: ptr(" "), SetDoctor: true, DoctorID: 11}, false},
		{"put_missing_content", domain.RecordChange{Title: ptr("t"), SetDoctor: true, DoctorID: 11}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := domain.Record{ID: 5, PatientID: 1, DoctorID: 10, Title: "old", Content: "old"}
			before := r
			assigned, err := r.Apply(tt.change, tt.full, time.Now())
			assert.Equal(t, domain.EInvalid, domain.ErrorCode(err))
			assert.False(t, assigned)
			assert.Equal(t, before, r)
		})
	}
}

func TestNewComment(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 7200))
	tooLong := domain.MaxLengthMessage(domain.MaxCommentLen)
	tests := []struct {
		name string
		text *string
		want map[string][]string
	}{
		{"valid", ptr("Looks fine."), nil},
		{"missing", nil, map[string][]string{"comment": {domain.MsgRequired}}},
		{"blank", ptr("   "), map[string][]string{"comment": {domain.MsgBlank}}},
		{"null_character", ptr("a\x00"), map[string][]string{"comment": {domain.MsgNullChars}}},
		{"at_limit_multibyte", ptr(strings.Repeat("ü", domain.MaxCommentLen)), nil},
		{"over_limit_multibyte", ptr(strings.Repeat("ü", domain.MaxCommentLen+1)), map[string][]string{"comment": {tooLong}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := domain.NewComment(5, 10, tt.text, now)
			assert.Equal(t, tt.want, fieldsOf(t, err))
			if tt.want == nil {
				assert.Equal(t, domain.Comment{RecordID: 5, DoctorID: 10, Text: *tt.text, CreatedAt: now.UTC()}, c)
			} else {
				assert.Zero(t, c)
			}
		})
	}
}

func TestTextFieldsAreTrimmedLikeDRF(t *testing.T) {
	title, content := "  Blood test \n", "\tbody  "
	r, err := domain.NewRecord(1, domain.RecordChange{Title: &title, Content: &content}, time.Unix(0, 0))
	require.NoError(t, err)
	assert.Equal(t, "Blood test", r.Title)
	assert.Equal(t, "body", r.Content)

	padded := " x "
	_, err = r.Apply(domain.RecordChange{Title: &padded}, false, time.Unix(1, 0))
	require.NoError(t, err)
	assert.Equal(t, "x", r.Title)

	// 100 characters plus padding is still within the limit once trimmed.
	long := "  " + strings.Repeat("é", domain.MaxTitleLen) + "  "
	require.NoError(t, domain.RecordChange{Title: &long}.Validate(false))

	text := "  noted  "
	c, err := domain.NewComment(1, 2, &text, time.Unix(0, 0))
	require.NoError(t, err)
	assert.Equal(t, "noted", c.Text)
}

func TestPage_Size(t *testing.T) {
	for limit, want := range map[int]int{
		-1: domain.DefaultPageSize, 0: domain.DefaultPageSize, 1: 1, 50: 50,
		domain.MaxPageSize: domain.MaxPageSize, domain.MaxPageSize + 1: domain.MaxPageSize, math.MaxInt: domain.MaxPageSize,
	} {
		assert.Equal(t, want, domain.Page{Limit: limit}.Size(), "limit %d", limit)
	}
}
