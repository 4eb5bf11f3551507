package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sizes is the data set to seed.
type sizes struct {
	Patients, Doctors, RecordsPerPatient, Comments int
}

// user is a seeded account and its access token.
type user struct {
	ID    int64
	Name  string
	Token string
}

// dataset is what seeding made, as the scenarios need it.
type dataset struct {
	Seeding  Seeding
	Password string
	Patients []user
	Doctors  []user
	Busy     int       // index in Doctors of the doctor with ~1,000 records
	RecOf    [][]int64 // record ids per patient index
	AssignOf [][]int64 // record ids per doctor index
}

// benchPassword passes Django's validators and is unlike any username.
const benchPassword = "Amber-Kettle-4071"

// assign is the doctor (index) of the i-th of total records: one "busy"
// doctor (index 0) gets about 1,000 of them, evenly spread in time, and
// the others share the rest round-robin. With fewer than 2,000 records
// every doctor gets an even share.
func assign(i, total, doctors int) int {
	if doctors == 1 {
		return 0
	}
	target := 1000
	if total < 2*target {
		target = max(1, total/doctors)
	}
	every := max(1, total/target)
	if i%every == 0 {
		return 0
	}
	others := i - i/every - 1 // non-busy records before i
	return 1 + others%(doctors-1)
}

// apiError is a non-2xx answer while seeding or preparing.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Body)
}

// call sends one JSON request and decodes a 2xx answer into out.
func (b *bench) call(ctx context.Context, method, path, token string, in, out any) (http.Header, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = b.base + path
	}
	resp, err := b.client.Do(request(method, url, token, body).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{Method: method, Path: strings.TrimPrefix(url, b.base), Status: resp.StatusCode, Body: truncate(string(data), 300)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error, stopping the rest.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// runID makes this run's usernames unique, so --url can target a server
// that already holds an earlier run's users.
func runID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func patientName(run string, i int) string { return fmt.Sprintf("pat%s_%d", run, i) }
func doctorName(run string, i int) string  { return fmt.Sprintf("dr%s_%d", run, i) }

// seedAPI makes the data set through the real write path: registration,
// sign-in, record creation by each patient (assigned to a doctor), and
// comments by the assigned doctors.
func seedAPI(ctx context.Context, b *bench, sz sizes) (*dataset, error) {
	run := runID()
	ds := &dataset{Password: benchPassword, Patients: make([]user, sz.Patients), Doctors: make([]user, sz.Doctors),
		RecOf: make([][]int64, sz.Patients), AssignOf: make([][]int64, sz.Doctors)}
	total := sz.Patients * sz.RecordsPerPatient
	ds.Seeding = Seeding{Path: "api", Patients: sz.Patients, Doctors: sz.Doctors, Records: total, Steps: map[string]float64{}}
	w := b.o.SeedWorkers
	start := time.Now()
	step := func(name string, t0 time.Time) {
		ds.Seeding.Steps[name] = time.Since(t0).Seconds()
		b.logf("  %s: %.1fs", name, time.Since(t0).Seconds())
	}

	// Accounts. Registration hashes the password (argon2id, a few at a
	// time on the server), so this and sign-in dominate seeding.
	t0 := time.Now()
	nUsers := sz.Patients + sz.Doctors
	err := parallel(ctx, nUsers, w, func(ctx context.Context, i int) error {
		role, name, u := "PATIENT", "", (*user)(nil)
		if i < sz.Doctors { // doctors first: records need them
			role, name, u = "DOCTOR", doctorName(run, i), &ds.Doctors[i]
		} else {
			name, u = patientName(run, i-sz.Doctors), &ds.Patients[i-sz.Doctors]
		}
		var out struct {
			ID       int64  `json:"id"`
			Approved *bool  `json:"approved"`
			Role     string `json:"role"`
		}
		_, err := b.call(ctx, "POST", "/api/users/register/", "", map[string]string{
			"username": name, "email": name + "@bench.example", "password": ds.Password, "role": role}, &out)
		if err != nil {
			return err
		}
		if role == "DOCTOR" && (out.Approved == nil || !*out.Approved) {
			return fmt.Errorf("doctor %s registered unapproved: run the server with HEALTHRECORD_AUTO_APPROVE_DOCTORS=true", name)
		}
		u.ID, u.Name = out.ID, name
		return nil
	})
	if err != nil {
		return nil, err
	}
	step("register", t0)

	t0 = time.Now()
	if err := parallel(ctx, nUsers, w, func(ctx context.Context, i int) error {
		u := &ds.Patients[max(0, i-sz.Doctors)]
		if i < sz.Doctors {
			u = &ds.Doctors[i]
		}
		tok, err := b.signIn(ctx, u.Name, ds.Password)
		u.Token = tok
		return err
	}); err != nil {
		return nil, err
	}
	step("signin", t0)

	// Records, each created by its patient and assigned to a doctor.
	t0 = time.Now()
	type assigned struct {
		id     int64
		doctor int
	}
	recs := make([]assigned, total)
	if err := parallel(ctx, total, w, func(ctx context.Context, i int) error {
		p, d := i%sz.Patients, assign(i, total, sz.Doctors)
		rng := mrand.New(mrand.NewPCG(uint64(i), 7))
		var out struct {
			ID int64 `json:"id"`
		}
		title, content := recordText(rng)
		_, err := b.call(ctx, "POST", "/api/records/", ds.Patients[p].Token,
			map[string]any{"title": title, "content": content, "doctor": ds.Doctors[d].ID}, &out)
		recs[i] = assigned{out.ID, d}
		return err
	}); err != nil {
		return nil, err
	}
	for i, r := range recs {
		p := i % sz.Patients
		ds.RecOf[p] = append(ds.RecOf[p], r.id)
		ds.AssignOf[r.doctor] = append(ds.AssignOf[r.doctor], r.id)
	}
	ds.Seeding.BusyRecords = len(ds.AssignOf[0])
	step("records", t0)

	// Comments by the assigned doctor.
	t0 = time.Now()
	nComments := total * sz.Comments
	if err := parallel(ctx, nComments, w, func(ctx context.Context, i int) error {
		r := recs[i/max(1, sz.Comments)]
		rng := mrand.New(mrand.NewPCG(uint64(i), 11))
		_, err := b.call(ctx, "POST", "/api/comments/", ds.Doctors[r.doctor].Token,
			map[string]any{"record": r.id, "comment": commentText(rng)}, nil)
		return err
	}); err != nil {
		return nil, err
	}
	ds.Seeding.Comments = nComments
	step("comments", t0)
	ds.Seeding.Seconds = time.Since(start).Seconds()
	return ds, nil
}

// signIn returns a fresh access token for username.
func (b *bench) signIn(ctx context.Context, username, password string) (string, error) {
	var out struct {
		Access string `json:"access"`
	}
	_, err := b.call(ctx, "POST", "/api/token/", "", map[string]string{"username": username, "password": password}, &out)
	if err == nil && out.Access == "" {
		err = fmt.Errorf("sign-in of %s: no access token in the answer", username)
	}
	return out.Access, err
}

var linkNext = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// doctorPages are the busy doctor's first page and a later page (about
// the middle of the list), following the Link header as a client would.
func (b *bench) doctorPages(ctx context.Context) (first, later string, err error) {
	d := b.ds.Doctors[b.ds.Busy]
	first = b.base + "/api/records/"
	later, url := first, first
	pages := max(1, b.ds.Seeding.BusyRecords/50/2)
	for range pages {
		h, err := b.call(ctx, "GET", url, d.Token, nil, nil)
		if err != nil {
			return "", "", err
		}
		m := linkNext.FindStringSubmatch(h.Get("Link"))
		if m == nil {
			break
		}
		url, later = m[1], m[1]
	}
	return first, later, nil
}

// Word lists for plausible, harmless record and comment text.
var (
	tests    = []string{"Blood test", "Lipid panel", "Chest X-ray", "ECG", "Thyroid panel", "Allergy test", "HbA1c", "Vitamin D", "Spirometry", "Skin check", "Eye exam", "Follow-up"}
	findings = []string{"Cholesterol 5.2 mmol/L.", "Blood pressure 128/82 mmHg.", "Resting heart rate 64 bpm.", "No acute findings.",
		"Mild seasonal rhinitis reported.", "Fasting glucose 5.4 mmol/L.", "TSH within range.", "Patient reports better sleep since last visit.",
		"Continue current medication at the same dose.", "Weight stable at 74 kg.", "Vitamin D slightly low; supplement advised.", "Peak flow 480 L/min."}
	advice = []string{"Within range; recheck in a year.", "Please book a follow-up in three months.", "Repeat the test after fasting.",
		"Discussed results by phone.", "No change needed.", "Refer to the dietitian.", "Start the supplement and retest in eight weeks."}
)

// recordText is a record's title (about 20 characters) and content (a
// few hundred characters).
func recordText(rng *mrand.Rand) (string, string) {
	title := tests[rng.IntN(len(tests))] + " " + time.Date(2020+rng.IntN(6), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	var c strings.Builder
	for n := 3 + rng.IntN(6); n > 0; n-- {
		c.WriteString(findings[rng.IntN(len(findings))])
		c.WriteByte(' ')
	}
	return title, strings.TrimSpace(c.String())
}

func commentText(rng *mrand.Rand) string {
	return advice[rng.IntN(len(advice))] + " " + advice[rng.IntN(len(advice))]
}

// The scenarios' requests.

// The generators take the base URL of the instance they load.

func (b *bench) genList(base string) gen {
	url, ps := base+"/api/records/", b.ds.Patients
	return func(rng *mrand.Rand) *http.Request { return request("GET", url, ps[rng.IntN(len(ps))].Token, nil) }
}

func (b *bench) genRead(base string) gen {
	ds := b.ds
	return func(rng *mrand.Rand) *http.Request {
		p := rng.IntN(len(ds.Patients))
		recs := ds.RecOf[p]
		return request("GET", base+"/api/records/"+strconv.FormatInt(recs[rng.IntN(len(recs))], 10)+"/", ds.Patients[p].Token, nil)
	}
}

// genGet gets url (found on b.base, such as a Link header's next page)
// from each instance.
func (b *bench) genGet(url, token string) func(base string) gen {
	return func(base string) gen {
		u := url
		if rest, ok := strings.CutPrefix(url, b.base); ok {
			u = base + rest
		}
		return func(*mrand.Rand) *http.Request { return request("GET", u, token, nil) }
	}
}

func (b *bench) genSignin(base string) gen {
	ds := b.ds
	url := base + "/api/token/"
	return func(rng *mrand.Rand) *http.Request {
		body, _ := json.Marshal(map[string]string{"username": ds.Patients[rng.IntN(len(ds.Patients))].Name, "password": ds.Password})
		return request("POST", url, "", body)
	}
}

// genCreate creates a record assigned to a doctor other than the busy
// one, so the doctor-list pages stay as seeded.
func (b *bench) genCreate(base string) gen {
	ds := b.ds
	url := base + "/api/records/"
	return func(rng *mrand.Rand) *http.Request {
		d := ds.Doctors[0]
		if len(ds.Doctors) > 1 {
			d = ds.Doctors[1+rng.IntN(len(ds.Doctors)-1)]
		}
		title, content := recordText(rng)
		body, _ := json.Marshal(map[string]any{"title": title, "content": content, "doctor": d.ID})
		return request("POST", url, ds.Patients[rng.IntN(len(ds.Patients))].Token, body)
	}
}

// genComment comments, as a doctor, on one of the records assigned to them.
func (b *bench) genComment(base string) gen {
	ds := b.ds
	var withRecords []int
	for i, recs := range ds.AssignOf {
		if len(recs) > 0 {
			withRecords = append(withRecords, i)
		}
	}
	url := base + "/api/comments/"
	return func(rng *mrand.Rand) *http.Request {
		d := withRecords[rng.IntN(len(withRecords))]
		recs := ds.AssignOf[d]
		body, _ := json.Marshal(map[string]any{"record": recs[rng.IntN(len(recs))], "comment": commentText(rng)})
		return request("POST", url, ds.Doctors[d].Token, body)
	}
}

func (b *bench) genMixed(base string) gen {
	return weighted([]int{40, 40, 10, 10}, []gen{b.genList(base), b.genRead(base), b.genCreate(base), b.genComment(base)})
}
