package httpapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
	"healthrecord/ports"
)

// cell is the expected answer of one role on one endpoint: a status and,
// for refusals, the exact detail.
type cell struct {
	status int
	detail string
}

// TestAccessMatrix holds every record and comment endpoint to the
// contract for every kind of caller, and checks that no refused write
// changed anything. Each record was first assigned to another doctor, who
// wrote its comment, then reassigned: comments follow their record, so the
// former doctor loses them (its own included) and the assigned one sees
// them all.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.mustPatient(t)
	otherPatient := e.mustPatient(t)
	assigned := e.mustDoctor(t, true)
	otherDoctor := e.mustDoctor(t, true)
	unapproved := e.mustDoctor(t, false)
	former := e.mustDoctor(t, true)
	admin := e.mustAdmin(t)
	roles := []struct {
		name string
		u    user
	}{
		{"owner", owner}, {"other-patient", otherPatient}, {"assigned-doctor", assigned},
		{"other-doctor", otherDoctor}, {"unapproved-doctor", unapproved}, {"admin", admin}, {"anonymous", user{}},
		{"former-doctor", former},
	}

	var (
		ok           = cell{status: 200}
		created      = cell{status: 201}
		deleted      = cell{status: 204}
		notFound     = cell{404, domain.MsgNotFound}
		anonymous    = cell{401, "Authentication credentials were not provided."}
		adminNo      = cell{403, domain.MsgAdminNoHealthData}
		ownerOnly    = cell{403, domain.MsgOnlyOwnerChanges}
		logOwnerOnly = cell{403, domain.MsgOnlyOwnerAccessLog}
		patients     = cell{403, domain.MsgOnlyPatientsCreate}
		doctors      = cell{403, domain.MsgOnlyDoctorsComment}
		noRecord     = cell{status: 400} // detail: the record field's "does not exist"
	)
	notAllowed := func(m string) cell { return cell{405, fmt.Sprintf("Method %q not allowed.", m)} }

	type fixture struct {
		rec record
		com comment
	}
	recPath := func(f fixture) string { return "/api/records/" + itoa(f.rec.ID) + "/" }
	comPath := func(f fixture) string { return "/api/comments/" + itoa(f.com.ID) + "/" }
	constant := func(s string) func(fixture) string { return func(fixture) string { return s } }
	change := map[string]any{"title": "Changed", "content": "Changed"}

	type endpoint struct {
		name   string
		method string
		path   func(fixture) string
		body   func(fixture) any
		write  bool
		// cells in the order of roles: owner, other patient, assigned
		// doctor, other doctor, unapproved doctor, admin, anonymous,
		// former doctor (the comment's author, no longer assigned).
		want [8]cell
		// listed: for lists, whether the fixture's item is in the answer.
		listed func(body resp, f fixture) bool
	}
	endpoints := []endpoint{
		{name: "records.list", method: "GET", path: constant("/api/records/"),
			want:   [8]cell{ok, ok, ok, ok, ok, adminNo, anonymous, ok},
			listed: func(r resp, f fixture) bool { return listHas(t, r, f.rec.ID) }},
		{name: "records.create", method: "POST", path: constant("/api/records/"), write: true,
			body: func(fixture) any { return map[string]any{"title": "New", "content": "New"} },
			want: [8]cell{created, created, patients, patients, patients, adminNo, anonymous, patients}},
		{name: "records.retrieve", method: "GET", path: recPath,
			want: [8]cell{ok, notFound, ok, notFound, notFound, adminNo, anonymous, notFound}},
		{name: "records.put", method: "PUT", path: recPath, write: true, body: func(fixture) any { return change },
			want: [8]cell{ok, notFound, ownerOnly, notFound, notFound, adminNo, anonymous, notFound}},
		{name: "records.patch", method: "PATCH", path: recPath, write: true,
			body: func(fixture) any { return map[string]any{"title": "Changed"} },
			want: [8]cell{ok, notFound, ownerOnly, notFound, notFound, adminNo, anonymous, notFound}},
		{name: "records.delete", method: "DELETE", path: recPath, write: true,
			want: [8]cell{deleted, notFound, ownerOnly, notFound, notFound, adminNo, anonymous, notFound}},
		{name: "records.access-log", method: "GET", path: func(f fixture) string { return recPath(f) + "access-log/" },
			want: [8]cell{ok, notFound, logOwnerOnly, notFound, notFound, adminNo, anonymous, notFound}},
		{name: "comments.list", method: "GET", path: constant("/api/comments/"),
			want:   [8]cell{ok, ok, ok, ok, ok, adminNo, anonymous, ok},
			listed: func(r resp, f fixture) bool { return listHas(t, r, f.com.ID) }},
		{name: "comments.list-of-record", method: "GET", path: func(f fixture) string { return "/api/comments/?record=" + itoa(f.rec.ID) },
			want:   [8]cell{ok, ok, ok, ok, ok, adminNo, anonymous, ok},
			listed: func(r resp, f fixture) bool { return listHas(t, r, f.com.ID) }},
		{name: "comments.create", method: "POST", path: constant("/api/comments/"), write: true,
			body: func(f fixture) any { return map[string]any{"record": f.rec.ID, "comment": "Second note."} },
			want: [8]cell{doctors, doctors, created, noRecord, noRecord, adminNo, anonymous, noRecord}},
		{name: "comments.retrieve", method: "GET", path: comPath,
			want: [8]cell{ok, notFound, ok, notFound, notFound, adminNo, anonymous, notFound}},
	}
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		endpoints = append(endpoints, endpoint{name: "comments." + m, method: m, path: comPath, write: true,
			body: func(fixture) any { return map[string]any{"comment": "Rewritten."} },
			want: [8]cell{notAllowed(m), notAllowed(m), notAllowed(m), notAllowed(m), notAllowed(m), notAllowed(m), anonymous, notAllowed(m)}})
	}

	ctx := context.Background()
	ownedBy := func(t *testing.T, id int64) int {
		if id == 0 {
			return 0
		}
		recs, err := e.db.Records().List(ctx, ports.RecordFilter{PatientID: id}, domain.Page{Limit: 500})
		require.NoError(t, err)
		return len(recs)
	}

	for _, ep := range endpoints {
		for i, role := range roles {
			t.Run(ep.name+"/"+role.name, func(t *testing.T) {
				// A fresh record with one comment per cell, so no cell's
				// write can hide another's.
				f := fixture{rec: e.mustRecord(t, owner, former.ID)}
				f.com = e.mustComment(t, former, f.rec.ID, "Initial note.")
				e.mustReassign(t, owner, f.rec.ID, assigned.ID)
				before := e.stored(t, f.rec.ID)
				ownedBefore := ownedBy(t, role.u.ID)

				var body any
				if ep.body != nil {
					body = ep.body(f)
				}
				r := e.send(t, ep.method, ep.path(f), role.u.Token, body)
				want := ep.want[i]
				require.Equal(t, want.status, r.Status, r.String())
				switch {
				case want == noRecord:
					assertFields(t, r, map[string][]string{"record": {fmt.Sprintf("Invalid pk \"%d\" - object does not exist.", f.rec.ID)}})
				case want.detail != "":
					assertDetail(t, r, want.status, want.detail)
				}
				if ep.listed != nil && r.Status == 200 {
					visible := role.u.ID == owner.ID || role.u.ID == assigned.ID
					assert.Equal(t, visible, ep.listed(r, f), "listed")
				}

				if !ep.write {
					return
				}
				if r.Status >= 400 {
					assert.Equal(t, before, e.stored(t, f.rec.ID), "a refused write changed the record or its comments")
					assert.Equal(t, ownedBefore, ownedBy(t, role.u.ID), "a refused create stored a record")
					return
				}
				switch ep.method + " " + ep.name {
				case "DELETE records.delete":
					_, err := e.db.Records().Get(ctx, f.rec.ID)
					assert.Equal(t, domain.ENotFound, domain.ErrorCode(err))
				case "POST records.create":
					assert.Equal(t, ownedBefore+1, ownedBy(t, role.u.ID))
				case "POST comments.create":
					assert.Len(t, e.stored(t, f.rec.ID).Comments, 2)
				default:
					assert.Equal(t, "Changed", e.stored(t, f.rec.ID).Title)
				}
			})
		}
	}
}

// listHas reports whether a list answer holds an object with id.
func listHas(t *testing.T, r resp, id int64) bool {
	for _, it := range r.List(t) {
		if it["id"] == float64(id) {
			return true
		}
	}
	return false
}
