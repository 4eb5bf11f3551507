package sqlite

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"

	"healthrecord/domain"
)

// The audit trail is stored in groups: the entries one request leaves
// for the records a list showed differ only in record and patient, so
// they are kept as one row (ids id … id+n-1; the first entry's record and
// patient in columns, the others' in `more`) with one audit_users row per
// user it names (actor or patient). A patient's list then costs one wide
// row and one index row instead of a wide row and four index entries per
// record shown. Every entry is still hashed on its own in the chain; a
// row keeps the hash before its first entry and after its last, and the
// hashes between are recomputed under the key when the row is read.

// maxAuditGroup bounds the entries of one row: a page shows at most
// this many records.
const maxAuditGroup = domain.MaxPageSize

// auditRow is one stored row: entries[0] with n and the packed rest.
type auditRow struct {
	first domain.AuditEntry // ID, PrevHash: the group's first; Hash: its last
	n     int
	more  []byte
}

// sameGroup reports whether b may follow a in one row: everything but
// record and patient equal, and a record named (security events and
// empty lists stay single).
func sameGroup(a, b domain.AuditEntry) bool {
	return a.RecordID != 0 && b.RecordID != 0 && a.At.Equal(b.At) && a.ActorID == b.ActorID &&
		a.ActorRole == b.ActorRole && a.Action == b.Action && a.Outcome == b.Outcome &&
		a.RequestID == b.RequestID && a.RemoteAddr == b.RemoteAddr
}

// groupAudit splits chained entries (ids, hashes set) into rows, appended
// to dst. dst grows once, by the rows' count: a read burst flushes
// hundreds of one-entry rows, and a row is a large struct with pointers,
// costly to copy and to clear again and again as append doubles.
func groupAudit(dst []auditRow, es []domain.AuditEntry) []auditRow {
	dst = slices.Grow(dst, auditGroups(es))
	for start := 0; start < len(es); {
		end := groupEnd(es, start)
		g := es[start:end]
		row := auditRow{first: g[0], n: len(g)}
		row.first.Hash = g[len(g)-1].Hash
		if len(g) > 1 {
			row.more = make([]byte, 0, (len(g)-1)*2*binary.MaxVarintLen32)
			for _, e := range g[1:] {
				row.more = binary.AppendUvarint(row.more, uint64(e.RecordID))
				row.more = binary.AppendUvarint(row.more, uint64(e.PatientID))
			}
		}
		dst = append(dst, row)
		start = end
	}
	return dst
}

// groupEnd is the end of the row that starts at es[start].
func groupEnd(es []domain.AuditEntry, start int) int {
	end := start + 1
	for end < len(es) && end-start < maxAuditGroup && sameGroup(es[start], es[end]) {
		end++
	}
	return end
}

// auditGroups is how many rows groupAudit makes of es.
func auditGroups(es []domain.AuditEntry) int {
	n := 0
	for start := 0; start < len(es); start = groupEnd(es, start) {
		n++
	}
	return n
}

var errBadGroup = errors.New("sqlite: an audit row's packed entries do not match its count")

// entries expands the row into its entries, oldest first, recomputing
// the hashes between its first and last under h. A row whose packed part
// was tampered with comes back with what it holds; verification then
// fails on the recomputed hash of its last entry.
func (r auditRow) entries(h *domain.AuditHasher) ([]domain.AuditEntry, error) {
	out := make([]domain.AuditEntry, r.n)
	e := r.first
	more := r.more
	for i := range out {
		if i > 0 {
			rec, k := binary.Uvarint(more)
			if k <= 0 {
				return nil, errBadGroup
			}
			pat, j := binary.Uvarint(more[k:])
			if j <= 0 {
				return nil, errBadGroup
			}
			more = more[k+j:]
			e.ID, e.PrevHash = out[i-1].ID+1, out[i-1].Hash
			e.RecordID, e.PatientID = int64(rec), int64(pat)
		}
		if i < r.n-1 {
			e.Hash = h.Entry(e, e.PrevHash)
		} else {
			e.Hash = r.first.Hash
		}
		out[i] = e
	}
	if len(more) != 0 {
		return nil, errBadGroup
	}
	return out, nil
}

// auditRef is one audit_users row: a user that the row with that id and
// time names as its actor or as a patient.
type auditRef struct{ user, at, id int64 }

// refs are the row's index rows: its actor and each patient its entries
// name, once each, sorted. A patient's own list names one user, indexed
// once for both filters. Records are not indexed one by one: a list names
// ten, and ten index rows scattered over the tree cost most of a list; a
// record's entries are found among its patient's.
func (r auditRow) refs(es []domain.AuditEntry) []auditRef { return r.appendRefs(nil, es) }

// appendRefs appends the row's index rows (see refs) to dst.
func (r auditRow) appendRefs(dst []auditRef, es []domain.AuditEntry) []auditRef {
	from := len(dst)
	at := toNanos(r.first.At)
	if r.first.ActorID != 0 {
		dst = append(dst, auditRef{r.first.ActorID, at, r.first.ID})
	}
	for _, e := range es {
		if e.PatientID != 0 {
			dst = append(dst, auditRef{e.PatientID, at, r.first.ID})
		}
	}
	own := dst[from:]
	if len(own) == 2 && own[0].user == own[1].user {
		return dst[:from+1] // a patient's own read: one user
	}
	slices.SortFunc(own, func(a, b auditRef) int { return cmp.Compare(a.user, b.user) })
	return dst[:from+len(slices.Compact(own))]
}
