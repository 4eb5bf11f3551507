package main

// The ceiling: the least a careful server does for the same request and
// the same answer, built with the same libraries and database settings as
// healthrecord, so that "how far from the ceiling" is a fair question. It
// holds a copy of healthrecord's seeded records and comments (same ids,
// same users), answers the same paths with the same JSON bytes (a list is
// the patient's records with their comments; a read, one record with its
// comments), verifies an HS256 token on every request, and does nothing
// else: no audit entry, no revocation check, no cache. It runs as a child
// process (this binary, re-executed) so that it has its own runtime and
// resident set, as healthrecord does, rather than sharing the client's.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite"

	"healthrecord/adapters/password"
)

// ceilingChildEnv makes this binary the ceiling server; it carries the
// HS256 key in hex (in the environment, not on the command line).
const ceilingChildEnv = "HRBENCH_CEILING_KEY"

// ceilingPGEnv, when set, is healthrecord's PostgreSQL database: the
// ceiling copies its rows into a schema there and serves from it. (In the
// environment: the URL may hold a password.)
const ceilingPGEnv = "HRBENCH_CEILING_PG"

// ceilingPragmas are healthrecord's settings (WAL, a busy timeout); the
// synchronous level is set per pool.
const ceilingPragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"

// ceilingUsers is how many accounts the ceiling's sign-in knows.
const ceilingUsers = 200

// ceilingReadConns is the ceiling's read pool, as healthrecord's.
const ceilingReadConns = 4

// ceilingPage is the page size of a list, healthrecord's default.
const ceilingPage = 50

// The ceiling's paths: healthrecord's own, so that both get the same
// requests, and the second insert ceiling under a prefix.
const (
	pathRecords      = "/api/records/"
	pathNormalPrefix = "/normal"
	pathSignin       = "/api/token/"
)

// The ceilings the scenarios are compared with.
const (
	ceilSelect       = "select"        // a patient's list: 10 records with their comments
	ceilRead         = "read"          // one record with its comments
	ceilInsertFull   = "insert FULL"   // one INSERT, its own commit, synchronous=FULL
	ceilInsertNormal = "insert NORMAL" // one INSERT, its own commit, synchronous=NORMAL (WAL)
	ceilMixed        = "mixed 80/20"   // 40% list, 40% read, 20% insert FULL
	ceilSignin       = "signin"        // argon2id check + session row + token
	// On PostgreSQL the insert ceilings are these, in place of FULL and
	// NORMAL.
	ceilInsertPGOn  = "insert sync_commit on"  // one INSERT, its own commit, synchronous_commit=on
	ceilInsertPGOff = "insert sync_commit off" // one INSERT, its own commit, synchronous_commit=off
)

// pgCeilingNameIf is pgCeilingName(name) if pg, else name.
func pgCeilingNameIf(pg bool, name string) string {
	if pg {
		return pgCeilingName(name)
	}
	return name
}

// pgCeilingName is the PostgreSQL ceiling that stands for a SQLite one.
func pgCeilingName(name string) string {
	switch name {
	case ceilInsertFull:
		return ceilInsertPGOn
	case ceilInsertNormal:
		return ceilInsertPGOff
	}
	return name
}

// What the ceiling serves, for the report.
const (
	ceilingSourceAPI = "a copy of healthrecord's seeded records and comments"
	ceilingSourceGen = "generated rows (healthrecord's database is not at hand with --url)"
)

// ceilingSource is what the ceiling serves: a copy of healthrecord's
// database (FromDB), or, with --url, generated rows.
type ceilingSource struct {
	FromDB string
	// Owners are the patients' user ids; Records[i] the record ids of
	// Owners[i] (both filled for generated rows too).
	Owners   []int64
	Records  [][]int64
	Comments int // per record, generated rows only
}

// ceiling is the parent's handle on the ceiling server.
type ceiling struct {
	proc   *serverProc
	src    ceilingSource
	tokens []string // by owner index
	Source string
}

// startCeiling starts the ceiling server on a copy of src and signs a
// token for every owner.
func startCeiling(ctx context.Context, tmp string, src ceilingSource) (*ceiling, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 64)
	_, _ = rand.Read(key)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	db := filepath.Join(tmp, "ceiling.db")
	args := []string{"--addr", addr, "--db", db}
	var env []string
	if isPostgresURL(src.FromDB) {
		env = append(env, ceilingPGEnv+"="+src.FromDB)
	} else if src.FromDB != "" {
		args = append(args, "--from", src.FromDB)
	} else {
		perOwner := 1
		if len(src.Records) > 0 {
			perOwner = len(src.Records[0])
		}
		args = append(args, "--owners", strconv.Itoa(len(src.Owners)), "--per-owner", strconv.Itoa(perOwner),
			"--comments", strconv.Itoa(src.Comments))
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), env...), ceilingChildEnv+"="+hex.EncodeToString(key))
	p, err := launch(ctx, cmd, "http://"+addr, db, filepath.Join(tmp, "ceiling.log"))
	if err != nil {
		return nil, err
	}
	c := &ceiling{proc: p, src: src, tokens: make([]string, len(src.Owners)), Source: ceilingSourceGen}
	if src.FromDB != "" {
		c.Source = ceilingSourceAPI
	}
	now := time.Now()
	for i, id := range src.Owners {
		c.tokens[i] = signHS256(key, id, now, 2*time.Hour)
	}
	return c, nil
}

// generatedSource is the ceiling's data set when healthrecord's database
// is not at hand: owners 1..owners with perOwner records each, numbered
// in insertion order as the ceiling's seeding numbers them.
func generatedSource(owners, perOwner, comments int) ceilingSource {
	src := ceilingSource{Owners: make([]int64, owners), Records: make([][]int64, owners), Comments: comments}
	for i := range owners {
		src.Owners[i] = int64(i + 1)
		for j := range perOwner {
			src.Records[i] = append(src.Records[i], int64(i*perOwner+j+1))
		}
	}
	return src
}

func (c *ceiling) stop() error { return c.proc.stop() }

// gen is the request load of one ceiling: the same requests as the
// scenario it bounds, with the ceiling's tokens.
func (c *ceiling) gen(name string) gen {
	base := c.proc.url
	list := func(rng *mrand.Rand) *http.Request {
		return request("GET", base+pathRecords, c.tokens[rng.IntN(len(c.tokens))], nil)
	}
	read := func(rng *mrand.Rand) *http.Request {
		i := rng.IntN(len(c.tokens))
		recs := c.src.Records[i]
		return request("GET", base+pathRecords+strconv.FormatInt(recs[rng.IntN(len(recs))], 10)+"/", c.tokens[i], nil)
	}
	insert := func(prefix string) gen {
		return func(rng *mrand.Rand) *http.Request {
			title, content := recordText(rng)
			body, _ := json.Marshal(map[string]any{"title": title, "content": content, "doctor": 1 + rng.IntN(50)})
			return request("POST", base+prefix+pathRecords, c.tokens[rng.IntN(len(c.tokens))], body)
		}
	}
	switch name {
	case ceilSelect:
		return list
	case ceilRead:
		return read
	case ceilInsertFull, ceilInsertPGOn:
		return insert("")
	case ceilInsertNormal, ceilInsertPGOff:
		return insert(pathNormalPrefix)
	case ceilMixed:
		return weighted([]int{40, 40, 20}, []gen{list, read, insert("")})
	case ceilSignin:
		return func(rng *mrand.Rand) *http.Request {
			body, _ := json.Marshal(map[string]string{"username": "u" + strconv.Itoa(rng.IntN(ceilingUsers)), "password": benchPassword})
			return request("POST", base+pathSignin, "", body)
		}
	}
	panic("unknown ceiling " + name)
}

// ceilingChild is the ceiling server's main: on a SQLite file of its own,
// or (--pg) on a schema of its own in healthrecord's PostgreSQL database.
func ceilingChild(args []string) error {
	key, err := hex.DecodeString(os.Getenv(ceilingChildEnv))
	if err != nil || len(key) < 32 {
		return errors.New("bad key in " + ceilingChildEnv)
	}
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dbPath := fs.String("db", "ceiling.db", "SQLite file")
	from := fs.String("from", "", "copy records and comments from this healthrecord database")
	owners := fs.Int("owners", 1000, "generated rows: owners")
	perOwner := fs.Int("per-owner", 10, "generated rows: records per owner")
	comments := fs.Int("comments", 2, "generated rows: comments per record")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var s *ceilingServer
	if pgURL := os.Getenv(ceilingPGEnv); pgURL != "" {
		if err := seedCeilingPG(ctx, pgURL); err != nil {
			return err
		}
		if s, err = openCeilingPG(ctx, pgURL, key); err != nil {
			return err
		}
	} else {
		if *from != "" {
			err = seedCeilingFrom(ctx, *dbPath, *from)
		} else {
			err = seedCeilingGenerated(ctx, *dbPath, *owners, max(1, *perOwner), *comments)
		}
		if err != nil {
			return err
		}
		if s, err = openCeiling(ctx, *dbPath, key); err != nil {
			return err
		}
	}
	defer s.Close()
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ceilingSchema is healthrecord's records and comments (columns and
// indexes the ceiling's statements use) and the sign-in tables.
var ceilingSchema = []string{
	`CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, patient_id INTEGER NOT NULL, doctor_id INTEGER,
	   title TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
	`CREATE INDEX records_patient ON records (patient_id, created_at DESC, id DESC)`,
	`CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT, record_id INTEGER NOT NULL, doctor_id INTEGER NOT NULL,
	   comment TEXT NOT NULL, created_at INTEGER NOT NULL)`,
	`CREATE INDEX comments_record ON comments (record_id, created_at, id)`,
	`CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, salt BLOB NOT NULL, hash BLOB NOT NULL)`,
	`CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_at INTEGER NOT NULL)`,
}

// createCeilingDB makes the ceiling's schema and sign-in accounts and
// calls fill in the same transaction.
func createCeilingDB(ctx context.Context, path string, fill func(tx *sql.Tx) error) error {
	db, err := sql.Open("sqlite", "file:"+path+"?"+ceilingPragmas+"&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return inTx(ctx, db, func(tx *sql.Tx) error {
		for _, q := range ceilingSchema {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		p := password.DefaultParams
		salt := make([]byte, p.SaltLen)
		_, _ = rand.Read(salt)
		hash := argon2.IDKey([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
		for i := range ceilingUsers {
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, salt, hash) VALUES (?, ?, ?, ?)`,
				i+1, "u"+strconv.Itoa(i), salt, hash); err != nil {
				return err
			}
		}
		return fill(tx)
	})
}

// seedCeilingFrom copies healthrecord's records and comments, ids and
// all, so that both servers answer the same request with the same rows.
func seedCeilingFrom(ctx context.Context, path, from string) error {
	return createCeilingDB(ctx, path, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `ATTACH DATABASE ? AS src`, from); err != nil {
			return err
		}
		for _, q := range []string{
			`INSERT INTO records (id, patient_id, doctor_id, title, content, created_at, updated_at)
			 SELECT id, patient_id, doctor_id, title, content, created_at, updated_at FROM src.records`,
			`INSERT INTO comments (id, record_id, doctor_id, comment, created_at)
			 SELECT id, record_id, doctor_id, comment, created_at FROM src.comments`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedCeilingGenerated writes owners × perOwner records, each with
// comments comments, in the shape the API seeding gives.
func seedCeilingGenerated(ctx context.Context, path string, owners, perOwner, comments int) error {
	return createCeilingDB(ctx, path, func(tx *sql.Tx) error {
		rec, err := tx.PrepareContext(ctx, `INSERT INTO records (patient_id, doctor_id, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		com, err := tx.PrepareContext(ctx, `INSERT INTO comments (record_id, doctor_id, comment, created_at) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		rows := owners * perOwner
		t0 := time.Now().Add(-time.Duration(rows) * time.Millisecond).UnixNano()
		for i := range rows {
			rng := mrand.New(mrand.NewPCG(uint64(i), 7))
			title, content := recordText(rng)
			at := t0 + int64(i)*int64(time.Millisecond)
			doctor := 1 + i%50
			if _, err := rec.ExecContext(ctx, 1+i/perOwner, doctor, title, content, at, at); err != nil {
				return err
			}
			for j := range comments {
				if _, err := com.ExecContext(ctx, i+1, doctor, commentText(rng), at+int64(j+1)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ceilingServer answers the ceiling's requests.
type ceilingServer struct {
	auth    hs256
	db      ceilingDB
	hashSem chan struct{}
	scratch chan *ceilingScratch
}

// ceilingDB is the ceiling's statements on one store (SQLite or
// PostgreSQL), each one prepared statement.
type ceilingDB interface {
	// list is a patient's first page joined with its comments; one is a
	// record the user owns or is assigned, with its comments. The rows
	// are read through sc, which they belong to until closed.
	list(ctx context.Context, sc *ceilingScratch, uid int64) (ceilingRows, error)
	one(ctx context.Context, sc *ceilingScratch, id, uid int64) (ceilingRows, error)
	// insert adds a record in its own commit, durable (synchronous=FULL,
	// synchronous_commit=on) or relaxed (NORMAL, off).
	insert(ctx context.Context, durable bool, uid int64, doctor *int64, title, content string, now int64) (int64, error)
	signinUser(ctx context.Context, username string) (id int64, salt, hash []byte, err error)
	addSession(ctx context.Context, sid string, uid, now int64) error
	Close() error
}

// ceilingRows are a statement's rows, scanned into a ceilingRow.
type ceilingRows interface {
	Next() bool
	scan(row *ceilingRow) error
	Err() error
	Close()
}

func newCeilingServer(db ceilingDB, key []byte) *ceilingServer {
	return &ceilingServer{auth: newHS256(key), db: db, hashSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		// A free list rather than a sync.Pool: a collection never empties
		// it, so a steady load allocates no scratch at all.
		scratch: make(chan *ceilingScratch, 256)}
}

// sqliteCeiling is the ceiling's statements on its SQLite file.
type sqliteCeiling struct {
	read, writeFull, writeN *sql.DB
	listSt, oneSt           *sql.Stmt
	insFull, insNormal      *sql.Stmt
	userSt, sessSt          *sql.Stmt
}

// openCeiling opens the ceiling's pools on its seeded SQLite database and
// prepares its statements.
func openCeiling(ctx context.Context, path string, key []byte) (*ceilingServer, error) {
	base := "file:" + path + "?" + ceilingPragmas
	s := &sqliteCeiling{}
	var err error
	open := func(dsn string, conns int) *sql.DB {
		if err != nil {
			return nil
		}
		var db *sql.DB
		if db, err = sql.Open("sqlite", dsn); err == nil {
			db.SetMaxOpenConns(conns)
			db.SetMaxIdleConns(conns)
			db.SetConnMaxIdleTime(0)
		}
		return db
	}
	s.read = open(base+"&_pragma=query_only(1)", ceilingReadConns)
	s.writeFull = open(base+"&_pragma=synchronous(FULL)", 1)
	s.writeN = open(base+"&_pragma=synchronous(NORMAL)", 1)
	prep := func(db *sql.DB, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, q)
		return st
	}
	// One statement per answer, as healthrecord's uncached path: the page
	// (or the record) joined with its comments, oldest comment first.
	s.listSt = prep(s.read, `SELECT r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at,
		  c.id, c.doctor_id, c.comment, c.created_at
		FROM (SELECT id, patient_id, doctor_id, title, content, created_at, updated_at FROM records
		      WHERE patient_id = ?1 ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(ceilingPage)+`) r
		LEFT JOIN comments c ON c.record_id = r.id
		ORDER BY r.created_at DESC, r.id DESC, c.created_at, c.id`)
	s.oneSt = prep(s.read, `SELECT r.id, r.patient_id, r.doctor_id, r.title, r.content, r.created_at, r.updated_at,
		  c.id, c.doctor_id, c.comment, c.created_at
		FROM records r LEFT JOIN comments c ON c.record_id = r.id
		WHERE r.id = ?1 AND (r.patient_id = ?2 OR r.doctor_id = ?2)
		ORDER BY c.created_at, c.id`)
	const ins = `INSERT INTO records (patient_id, doctor_id, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`
	s.insFull = prep(s.writeFull, ins)
	s.insNormal = prep(s.writeN, ins)
	s.userSt = prep(s.read, `SELECT id, salt, hash FROM users WHERE username = ?`)
	s.sessSt = prep(s.writeFull, `INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)`)
	if err != nil {
		s.Close()
		return nil, err
	}
	return newCeilingServer(s, key), nil
}

// sqliteRows scans a SQLite statement's rows through its nullable
// columns; it lives in the request's scratch.
type sqliteRows struct {
	*sql.Rows
	dest                  []any
	id, patient, cat, uat int64
	doctor                sql.NullInt64
	title, content        string
	cid, cdoctor, ccat    sql.NullInt64
	ctext                 sql.NullString
}

func (r *sqliteRows) scan(row *ceilingRow) error {
	if r.dest == nil {
		r.dest = []any{&r.id, &r.patient, &r.doctor, &r.title, &r.content, &r.cat, &r.uat, &r.cid, &r.cdoctor, &r.ctext, &r.ccat}
	}
	if err := r.Rows.Scan(r.dest...); err != nil {
		return err
	}
	*row = ceilingRow{id: r.id, patient: r.patient, doctor: r.doctor.Int64, title: r.title, content: r.content, cat: r.cat, uat: r.uat,
		cid: r.cid.Int64, cdoctor: r.cdoctor.Int64, ctext: r.ctext.String, ccat: r.ccat.Int64, hasComment: r.cid.Valid}
	return nil
}

func (r *sqliteRows) Close() {
	_ = r.Rows.Close()
	r.Rows, r.title, r.content, r.ctext = nil, "", "", sql.NullString{}
}

func (s *sqliteCeiling) query(ctx context.Context, sc *ceilingScratch, st *sql.Stmt, args ...any) (ceilingRows, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	sc.sqlite.Rows = rows
	return &sc.sqlite, nil
}

func (s *sqliteCeiling) list(ctx context.Context, sc *ceilingScratch, uid int64) (ceilingRows, error) {
	return s.query(ctx, sc, s.listSt, uid)
}

func (s *sqliteCeiling) one(ctx context.Context, sc *ceilingScratch, id, uid int64) (ceilingRows, error) {
	return s.query(ctx, sc, s.oneSt, id, uid)
}

func (s *sqliteCeiling) insert(ctx context.Context, durable bool, uid int64, doctor *int64, title, content string, now int64) (int64, error) {
	st := s.insNormal
	if durable {
		st = s.insFull
	}
	var d any
	if doctor != nil {
		d = *doctor
	}
	res, err := st.ExecContext(ctx, uid, d, title, content, now, now)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (s *sqliteCeiling) signinUser(ctx context.Context, username string) (id int64, salt, hash []byte, err error) {
	err = s.userSt.QueryRowContext(ctx, username).Scan(&id, &salt, &hash)
	return id, salt, hash, err
}

func (s *sqliteCeiling) addSession(ctx context.Context, sid string, uid, now int64) error {
	_, err := s.sessSt.ExecContext(ctx, sid, uid, now)
	return err
}

// Close closes the server's database.
func (s *ceilingServer) Close() error { return s.db.Close() }

// Close closes the pools (and with them the statements).
func (s *sqliteCeiling) Close() error {
	var errs []error
	for _, db := range []*sql.DB{s.read, s.writeFull, s.writeN} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

func (s *ceilingServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeCeilingBody(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET "+pathRecords+"{$}", s.handleList)
	mux.HandleFunc("GET "+pathRecords+"{id}/{$}", s.handleRead)
	mux.HandleFunc("POST "+pathRecords+"{$}", func(w http.ResponseWriter, r *http.Request) { s.handleInsert(w, r, true) })
	mux.HandleFunc("POST "+pathNormalPrefix+pathRecords+"{$}", func(w http.ResponseWriter, r *http.Request) { s.handleInsert(w, r, false) })
	mux.HandleFunc("POST "+pathSignin+"{$}", s.handleSignin)
	return mux
}

// ceilingScratch is one request's reusable memory: the answer's buffer,
// the token's decoding space, the row and the store's scan targets.
type ceilingScratch struct {
	buf    []byte
	tok    [1024]byte
	row    ceilingRow
	sqlite sqliteRows
	pg     pgRows
}

// ceilingRow is one row of a list or read: a record, and one of its
// comments when hasComment. A doctor of 0 is none.
type ceilingRow struct {
	id, patient, doctor, cat, uat int64
	title, content                string
	hasComment                    bool
	cid, cdoctor, ccat            int64
	ctext                         string
}

func (s *ceilingServer) getScratch() *ceilingScratch {
	select {
	case sc := <-s.scratch:
		return sc
	default:
	}
	return &ceilingScratch{buf: make([]byte, 0, 16<<10)}
}

func (s *ceilingServer) putScratch(sc *ceilingScratch) {
	if cap(sc.buf) > 256<<10 { // one huge answer does not pin its memory
		sc.buf = make([]byte, 0, 16<<10)
	}
	sc.row = ceilingRow{}
	select {
	case s.scratch <- sc:
	default:
	}
}

// jsonContentType is shared by every answer: net/http only reads it.
var jsonContentType = []string{"application/json"}

func writeCeilingBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var (
	bodyNoToken   = []byte(`{"detail":"Authentication credentials were not provided."}`)
	bodyBadToken  = []byte(`{"detail":"Given token not valid for any token type","code":"token_not_valid"}`)
	bodyNotFound  = []byte(`{"detail":"Not found."}`)
	bodyBadBody   = []byte(`{"detail":"JSON parse error"}`)
	bodyBadSignin = []byte(`{"detail":"No active account found with the given credentials"}`)
)

// user verifies the request's bearer token into sc and returns its
// user_id; on failure it has answered.
func (s *ceilingServer) user(w http.ResponseWriter, r *http.Request, sc *ceilingScratch) (int64, bool) {
	const prefix = "Bearer "
	h := r.Header["Authorization"]
	if len(h) != 1 || !strings.HasPrefix(h[0], prefix) {
		writeCeilingBody(w, http.StatusUnauthorized, bodyNoToken)
		return 0, false
	}
	id, ok := s.auth.verify(h[0][len(prefix):], time.Now().Unix(), &sc.tok)
	if !ok {
		writeCeilingBody(w, http.StatusUnauthorized, bodyBadToken)
	}
	return id, ok
}

// handleList answers a patient's first page: their records, newest
// first, each with its comments.
func (s *ceilingServer) handleList(w http.ResponseWriter, r *http.Request) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	uid, ok := s.user(w, r, sc)
	if !ok {
		return
	}
	rows, err := s.db.list(r.Context(), sc, uid)
	var body []byte
	if err == nil {
		body, _, err = s.records(sc, rows)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeCeilingBody(w, http.StatusOK, body)
}

// handleRead answers one record the caller owns or is assigned, with its
// comments; anything else is 404.
func (s *ceilingServer) handleRead(w http.ResponseWriter, r *http.Request) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	uid, ok := s.user(w, r, sc)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeCeilingBody(w, http.StatusNotFound, bodyNotFound)
		return
	}
	rows, err := s.db.one(r.Context(), sc, id, uid)
	var body []byte
	var n int
	if err == nil {
		body, n, err = s.records(sc, rows)
	}
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case n == 0:
		writeCeilingBody(w, http.StatusNotFound, bodyNotFound)
	default:
		// records wrote an array of one: the answer is its element.
		writeCeilingBody(w, http.StatusOK, body[1:len(body)-1])
	}
}

// records reads rows (records joined with their comments, grouped by
// record), closes them, and appends them to sc.buf as a JSON array; n is
// how many records there were.
func (s *ceilingServer) records(sc *ceilingScratch, rows ceilingRows) ([]byte, int, error) {
	defer rows.Close()
	b := append(sc.buf[:0], '[')
	row := &sc.row
	n, last := 0, int64(0)
	for rows.Next() {
		if err := rows.scan(row); err != nil {
			return nil, 0, err
		}
		if n == 0 || row.id != last {
			if n > 0 {
				b = append(b, "]},"...)
			}
			n, last = n+1, row.id
			b = appendRecordHead(b, row.id, row.patient, row.doctor, row.title, row.content, row.cat, row.uat)
		} else {
			b = append(b, ',')
		}
		if row.hasComment {
			b = appendComment(b, row.cid, row.id, row.cdoctor, row.ctext, row.ccat)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if n > 0 {
		b = append(b, "]}"...)
	}
	b = append(b, ']')
	sc.buf = b
	return b, n, nil
}

// insertBody is a create's body.
type insertBody struct {
	Title   string `json:"title"`
	Content string `json:"content"`
	Doctor  *int64 `json:"doctor"`
}

// handleInsert is one single-row INSERT in its own commit, durable or
// relaxed, answered with the created record.
func (s *ceilingServer) handleInsert(w http.ResponseWriter, r *http.Request, durable bool) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	uid, ok := s.user(w, r, sc)
	if !ok {
		return
	}
	var in insertBody
	body, err := readLimited(r, sc.buf[:0], 1<<20)
	sc.buf = body[:0]
	if err != nil || json.Unmarshal(body, &in) != nil || in.Title == "" {
		writeCeilingBody(w, http.StatusBadRequest, bodyBadBody)
		return
	}
	now := time.Now().UnixNano()
	id, err := s.db.insert(r.Context(), durable, uid, in.Doctor, in.Title, in.Content, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var d int64
	if in.Doctor != nil {
		d = *in.Doctor
	}
	b := appendRecordHead(sc.buf[:0], id, uid, d, in.Title, in.Content, now, now)
	b = append(b, "]}"...)
	sc.buf = b
	writeCeilingBody(w, http.StatusCreated, b)
}

// readLimited appends r's body to dst, at most limit bytes.
func readLimited(r *http.Request, dst []byte, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errors.New("body too large")
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return dst, nil
			}
			return dst, err
		}
	}
}

// handleSignin is a bare sign-in: look the user up, check the password
// with the same argon2id cost and concurrency bound, record a session,
// sign a token.
func (s *ceilingServer) handleSignin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeCeilingBody(w, http.StatusBadRequest, bodyBadBody)
		return
	}
	id, salt, hash, err := s.db.signinUser(r.Context(), in.Username)
	if err != nil {
		writeCeilingBody(w, http.StatusUnauthorized, bodyBadSignin)
		return
	}
	p := password.DefaultParams
	select {
	case s.hashSem <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	got := argon2.IDKey([]byte(in.Password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	<-s.hashSem
	if subtle.ConstantTimeCompare(got, hash) != 1 {
		writeCeilingBody(w, http.StatusUnauthorized, bodyBadSignin)
		return
	}
	sid := make([]byte, 16)
	_, _ = rand.Read(sid)
	if err := s.db.addSession(r.Context(), hex.EncodeToString(sid), id, time.Now().UnixNano()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tok := signHS256(s.auth.key, id, time.Now(), 5*time.Minute)
	writeCeilingBody(w, http.StatusOK, []byte(`{"access":"`+tok+`"}`))
}
