package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"healthrecord/adapters/httpapi"
	"healthrecord/app"
	"healthrecord/domain"
)

// benchStack is the whole service in process, called through its
// http.Handler (no sockets), with one patient holding 10 records of 2
// comments each, as hrbench's data set has.
type benchStack struct {
	h              http.Handler
	patient        string
	doctor         string
	doctorID, rec1 int64
}

func newBenchStack(b *testing.B) *benchStack {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, a := newStack(b, app.Config{AutoApproveDoctors: true}, log)
	s := &benchStack{h: httpapi.NewServer(a, httpapi.Config{Ready: db.Ready}, log)}
	reg := func(name string, role domain.Role) (int64, string) {
		u, err := a.Register(ctx, domain.Registration{Username: name, Email: name + "@example.com", Password: testPassword, Role: role}, "127.0.0.1")
		require.NoError(b, err)
		tp, err := a.SignIn(ctx, name, testPassword, "127.0.0.1")
		require.NoError(b, err)
		return u.ID, tp.Access
	}
	patientID, patient := reg("benchpatient", domain.RolePatient)
	doctorID, doctor := reg("benchdoctor", domain.RoleDoctor)
	s.patient, s.doctor, s.doctorID = patient, doctor, doctorID
	pa := domain.Actor{ID: patientID, Role: domain.RolePatient}
	da := domain.Actor{ID: doctorID, Role: domain.RoleDoctor}
	for i := range 10 {
		title, content := fmt.Sprint("Visit ", i), strings.Repeat("observations ", 20)
		r, err := a.CreateRecord(ctx, pa, domain.RecordChange{Title: &title, Content: &content, SetDoctor: true, DoctorID: doctorID})
		require.NoError(b, err)
		if i == 0 {
			s.rec1 = r.ID
		}
		for j := range 2 {
			text := fmt.Sprint("comment ", j)
			_, err := a.CreateComment(ctx, da, r.ID, &text)
			require.NoError(b, err)
		}
	}
	return s
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU runs fn (the timed loop) and reports the process's CPU time
// per operation beside the wall time: on a machine shared with other work
// the wall time says more about the neighbours than about the code, while
// the CPU a request costs (background audit flushes included) does not.
func reportCPU(b *testing.B, fn func()) {
	start := cpuTime()
	fn()
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func (s *benchStack) serve(b *testing.B, method, path, token, body string, want int) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
}

// BenchmarkListRecords is hrbench's list scenario without the network:
// token check, keyset query, nested comments, JSON, buffered audit.
func BenchmarkListRecords(b *testing.B) {
	s := newBenchStack(b)
	b.ReportAllocs()
	reportCPU(b, func() {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.serve(b, "GET", "/api/records/", s.patient, "", http.StatusOK)
			}
		})
	})
}

// BenchmarkReadRecord reads one record with its comments.
func BenchmarkReadRecord(b *testing.B) {
	s := newBenchStack(b)
	path := fmt.Sprintf("/api/records/%d/", s.rec1)
	b.ReportAllocs()
	reportCPU(b, func() {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.serve(b, "GET", path, s.patient, "", http.StatusOK)
			}
		})
	})
}

// BenchmarkReadRecordClients reads as hrbench's 32 connections do: many
// requests at once, each for one of the patient's records.
func BenchmarkReadRecordClients(b *testing.B) {
	s := newBenchStack(b)
	b.ReportAllocs()
	b.SetParallelism(16) // 32 concurrent requests on 2 CPUs
	reportCPU(b, func() {
		b.RunParallel(func(pb *testing.PB) {
			path := fmt.Sprintf("/api/records/%d/", s.rec1)
			for pb.Next() {
				s.serve(b, "GET", path, s.patient, "", http.StatusOK)
			}
		})
	})
}

// BenchmarkCreateRecord is the write path: record + outbox event + audit
// entry in one durable (group) commit.
func BenchmarkCreateRecord(b *testing.B) {
	s := newBenchStack(b)
	body := fmt.Sprintf(`{"title":"Blood test","content":"Cholesterol 5.2","doctor":%d}`, s.doctorID)
	b.ReportAllocs()
	b.SetParallelism(16) // concurrent clients, so commits are shared as in production
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.serve(b, "POST", "/api/records/", s.patient, body, http.StatusCreated)
		}
	})
}
