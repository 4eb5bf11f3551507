package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// The oracle: records and comments were json.Marshal of these views
// before appendRecord replaced them, and the wire must not notice.
type commentView struct {
	ID        int64  `json:"id"`
	Record    int64  `json:"record"`
	Doctor    int64  `json:"doctor"`
	Comment   string `json:"comment"`
	CreatedAt string `json:"created_at"`
}

func toCommentView(c domain.Comment) commentView {
	return commentView{ID: c.ID, Record: c.RecordID, Doctor: c.DoctorID, Comment: c.Text, CreatedAt: timeJSON(c.CreatedAt)}
}

type recordView struct {
	ID        int64         `json:"id"`
	Patient   int64         `json:"patient"`
	Doctor    *int64        `json:"doctor"`
	Title     string        `json:"title"`
	Content   string        `json:"content"`
	CreatedAt string        `json:"created_at"`
	UpdatedAt string        `json:"updated_at"`
	Comments  []commentView `json:"comments"`
}

func toRecordView(r domain.Record) recordView {
	return recordView{
		ID: r.ID, Patient: r.PatientID, Doctor: optID(r.DoctorID), Title: r.Title, Content: r.Content,
		CreatedAt: timeJSON(r.CreatedAt), UpdatedAt: timeJSON(r.UpdatedAt),
		Comments: mapList(r.Comments, toCommentView),
	}
}

func marshalOracle(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// fragments are the pieces of text an escaper gets wrong: JSON's own
// specials, control bytes, HTML, the JavaScript line separators, and
// invalid UTF-8 (stray, truncated, overlong, surrogate, beyond U+10FFFF).
var fragments = []string{
	"", "a", "Blood test", " ", `"`, `\`, "/", "'", "<", ">", "&", "<script>&amp;</script>",
	"\x00", "\x01", "\b", "\f", "\n", "\r", "\t", "\x0b", "\x1b", "\x1f", "\x7f",
	"\u2028", "\u2029", "\u2027", "\u202a", "é", "€", "😀", "\u00a0", "\ufffd", "\ufeff",
	"\xff", "\x80", "\xc3", "\xe2\x80", "\xe2\x80\xa9\xe2", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
}

func genString(rng *rand.Rand) string {
	var b []byte
	for range rng.IntN(8) {
		switch rng.IntN(4) {
		case 0: // any byte at all
			b = append(b, byte(rng.IntN(256)))
		case 1: // any code point (surrogates come out as U+FFFD)
			b = utf8.AppendRune(b, rng.Int32N(utf8.MaxRune+1))
		default:
			b = append(b, fragments[rng.IntN(len(fragments))]...)
		}
	}
	return string(b)
}

func genID(rng *rand.Rand) int64 {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return -rng.Int64()
	default:
		return rng.Int64N(1_000_000) + 1
	}
}

var locations = []*time.Location{
	time.UTC, time.Local,
	time.FixedZone("IST", 5*3600+1800), time.FixedZone("NST", -(3*3600 + 1800)), time.FixedZone("odd", 7*60+13),
}

func genTime(rng *rand.Rand) time.Time {
	switch rng.IntN(10) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now() // with a monotonic reading
	case 2: // years RFC 3339 cannot hold: still formatted, never refused
		return time.Date(rng.IntN(30000)-10000, 1, 1, 0, 0, 0, rng.IntN(1e9), time.UTC)
	}
	var nsec int64
	switch rng.IntN(4) {
	case 1:
		nsec = rng.Int64N(1e9)
	case 2:
		nsec = rng.Int64N(1000) * 1e6 // trailing zeros are trimmed
	case 3:
		nsec = rng.Int64N(10) * 1e8
	}
	return time.Unix(rng.Int64N(4102444800), nsec).In(locations[rng.IntN(len(locations))])
}

func genComment(rng *rand.Rand) domain.Comment {
	return domain.Comment{ID: genID(rng), RecordID: genID(rng), DoctorID: genID(rng), Text: genString(rng), CreatedAt: genTime(rng)}
}

func genRecord(rng *rand.Rand) domain.Record {
	r := domain.Record{
		ID: genID(rng), PatientID: genID(rng), DoctorID: genID(rng),
		Title: genString(rng), Content: genString(rng), CreatedAt: genTime(rng), UpdatedAt: genTime(rng),
	}
	switch n := rng.IntN(5); n {
	case 4: // nil, as a record loaded without comments has: still []
	default:
		r.Comments = make([]domain.Comment, n)
		for i := range r.Comments {
			r.Comments[i] = genComment(rng)
		}
	}
	return r
}

func TestAppendRecord_MatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 2028))
	for range 5000 {
		r := genRecord(rng)
		want := marshalOracle(t, toRecordView(r))
		if got := string(appendRecord(nil, r)); got != want {
			t.Fatalf("record %#v\n got %s\nwant %s", r, got, want)
		}
	}
}

func TestAppendComment_MatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 2029))
	for range 5000 {
		c := genComment(rng)
		want := marshalOracle(t, toCommentView(c))
		if got := string(appendComment(nil, c)); got != want {
			t.Fatalf("comment %#v\n got %s\nwant %s", c, got, want)
		}
	}
}

// TestAppendJSONString_Escapes spells out what the oracle tests check, so
// a reader sees the rules without running encoding/json.
func TestAppendJSONString_Escapes(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain text, é € 😀", `"plain text, é € 😀"`},
		{`say "hi" \ bye`, `"say \"hi\" \\ bye"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x0b\x1f\x7f", `"\u0000\u0001\u000b\u001f` + "\x7f" + `"`},
		{"<a>&</a>", `"\u003ca\u003e\u0026\u003c/a\u003e"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"a\xffb\xe2\x80", `"a\ufffdb\ufffd\ufffd"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendJSONString(nil, tt.in)), "%q", tt.in)
		assert.Equal(t, tt.want, marshalOracle(t, tt.in), "encoding/json disagrees on %q", tt.in)
	}
}

// TestWriteAppendedList_Page checks the answer around the body: status,
// Content-Type, the next page's Link, and [] for an empty page.
func TestWriteAppendedList_Page(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	page := []domain.Record{genRecord(rng), genRecord(rng)}
	next := &domain.Cursor{CreatedAt: time.Unix(1700000000, 5).UTC(), ID: 7}

	w := httptest.NewRecorder()
	writeList(w, httptest.NewRequest(http.MethodGet, "http://api.test/api/records/?limit=2", nil), recordsBody(page), next)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, `<http://api.test/api/records/?cursor=`+encodeCursor(*next)+`&limit=2>; rel="next"`, w.Header().Get("Link"))
	assert.Equal(t, marshalOracle(t, mapList(page, toRecordView)), w.Body.String())

	w = httptest.NewRecorder()
	writeList(w, httptest.NewRequest(http.MethodGet, "/api/comments/", nil), commentsBody(nil), nil)
	assert.Equal(t, "[]", w.Body.String())
	assert.Empty(t, w.Header().Values("Link"))
}

// FuzzRecordJSON compares the appender with encoding/json on any text.
func FuzzRecordJSON(f *testing.F) {
	f.Add("Blood test", "Cholesterol 5.2", "Looks fine.", int64(0), int64(1700000000123456789))
	f.Add("<b>&</b>", "line\nbreak\ttab\x00nul", "\u2028\u2029", int64(7), int64(0))
	f.Add("\xff\xfe", "\xe2\x80", `"\`, int64(math.MaxInt64), int64(-1))
	f.Fuzz(func(t *testing.T, title, content, comment string, doctor, nanos int64) {
		at := time.Unix(0, nanos)
		r := domain.Record{
			ID: 1, PatientID: 2, DoctorID: doctor, Title: title, Content: content,
			CreatedAt: at.In(locations[2]), UpdatedAt: at,
			Comments: []domain.Comment{{ID: 3, RecordID: 1, DoctorID: doctor, Text: comment, CreatedAt: at.In(locations[3])}},
		}
		want := marshalOracle(t, toRecordView(r))
		if got := string(appendRecord(nil, r)); got != want {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// benchPage is a patient's first page as hrbench's data set has it: 10
// records of 2 comments each.
func benchPage() []domain.Record {
	at := time.Date(2025, 11, 27, 13, 5, 0, 123456789, time.UTC)
	page := make([]domain.Record, 10)
	for i := range page {
		id := int64(100 + i)
		page[i] = domain.Record{ID: id, PatientID: 1, DoctorID: 2, Title: fmt.Sprint("Visit ", i),
			Content: strings.Repeat("observations ", 20), CreatedAt: at, UpdatedAt: at,
			Comments: []domain.Comment{
				{ID: 2 * id, RecordID: id, DoctorID: 2, Text: "comment 0", CreatedAt: at},
				{ID: 2*id + 1, RecordID: id, DoctorID: 2, Text: "comment 1", CreatedAt: at},
			}}
	}
	return page
}

// BenchmarkRecordPageJSON encodes one page by hand and, for comparison,
// as it was: views and json.Marshal.
func BenchmarkRecordPageJSON(b *testing.B) {
	page := benchPage()
	b.Run("append", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = appendArray(buf[:0], page, appendRecord)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("marshal", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			out, err := json.Marshal(mapList(page, toRecordView))
			if err != nil {
				b.Fatal(err)
			}
			n = len(out)
		}
		b.SetBytes(int64(n))
	})
}
