package sqlite

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// BenchmarkRecordsList reads a patient's first page (10 records of 2
// comments each, as hrbench's data set), from the record cache and, as
// after every change, without it.
func BenchmarkRecordsList(b *testing.B) {
	db, err := Open(b.Context(), b.TempDir()+"/bench.db")
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	require.NoError(b, db.Migrate(b.Context()))
	const patients = 100
	for i := range patients {
		mustUser(b, db, fmt.Sprint("p", i), domain.RolePatient)
	}
	d := mustUser(b, db, "d", domain.RoleDoctor)
	require.NoError(b, db.WithinTx(b.Context(), func(tx ports.Repos) error {
		for p := range int64(patients) {
			for i := range 10 {
				r := domain.Record{PatientID: p + 1, DoctorID: d.ID, Title: fmt.Sprint("Visit ", i), Content: strings.Repeat("observations ", 15), CreatedAt: t0, UpdatedAt: t0}
				if err := tx.Records().Create(b.Context(), &r); err != nil {
					return err
				}
				for j := range 2 {
					c := domain.Comment{RecordID: r.ID, DoctorID: d.ID, Text: fmt.Sprint("comment ", j), CreatedAt: t0}
					if err := tx.Comments().Create(b.Context(), &c); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}))
	for _, tc := range []struct {
		name  string
		cache *recordCache
	}{{"cached", newRecordCache(defaultCacheBytes)}, {"uncached", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			db.records = tc.cache
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int64(0)
				for pb.Next() {
					i++
					recs, err := db.Records().List(b.Context(), ports.RecordFilter{PatientID: 1 + i%patients}, domain.Page{Limit: 10})
					if err != nil || len(recs) != 10 || len(recs[0].Comments) != 2 {
						b.Fatalf("%v %d", err, len(recs))
					}
				}
			})
		})
	}
}

// BenchmarkAuditAppend appends one flush of buffered read entries in one
// transaction: 100 reads, or 100 lists of 10 records each (one entry per
// record shown), as ~100 requests in one flush interval leave; 400 and
// 1600 reads, as a busier server's flush holds.
func BenchmarkAuditAppend(b *testing.B) {
	for _, shape := range []struct {
		name        string
		lists, recs int
	}{{"reads", 100, 1}, {"reads_x4", 400, 1}, {"reads_x16", 1600, 1}, {"lists", 100, 10}, {"lists_x10", 1000, 10}} {
		b.Run(shape.name, func(b *testing.B) {
			db, err := Open(b.Context(), b.TempDir()+"/bench.db")
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			require.NoError(b, db.Migrate(b.Context()))
			batch := make([]domain.AuditEntry, 0, shape.lists*shape.recs)
			b.ReportAllocs()
			var n int64
			cpu0 := cpuTime(b)
			for b.Loop() {
				batch = batch[:0]
				for range shape.lists {
					n++
					patient := n%200 + 1
					for j := range shape.recs {
						batch = append(batch, domain.AuditEntry{At: t0.Add(time.Duration(n)), ActorID: patient, ActorRole: domain.RolePatient,
							Action: domain.ActionRecordList, RecordID: patient*10 + int64(j), PatientID: patient, Outcome: domain.OutcomeAllowed,
							RequestID: fmt.Sprintf("%016x", n), RemoteAddr: "127.0.0.1"})
					}
				}
				require.NoError(b, db.Audit().Append(b.Context(), batch...))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/entry")
			// The wall time is mostly fsync; the CPU is what a flush takes
			// from the requests beside it.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N*len(batch)), "cpu-ns/entry")
		})
	}
}
