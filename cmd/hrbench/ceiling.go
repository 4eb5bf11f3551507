package main

// The ceiling: the least a server can do for each kind of request, built
// with the same libraries and SQLite settings as healthrecord, so that
// "how far from the ceiling" is a fair question. It runs as a child
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
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite"

	"healthrecord/adapters/password"
)

// ceilingChildEnv makes this binary the ceiling server; it carries the
// HS256 key in hex (in the environment, not on the command line).
const ceilingChildEnv = "HRBENCH_CEILING_KEY"

// ceilingPragmas are healthrecord's durability settings (WAL,
// synchronous=FULL, immediate write transactions).
const ceilingPragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"

// ceilingUsers is how many accounts the ceiling's sign-in knows.
const ceilingUsers = 200

// ceilingReadConns is the ceiling's read pool, as healthrecord's.
const ceilingReadConns = 4

// ceiling is the parent's handle on the ceiling server.
type ceiling struct {
	proc   *serverProc
	tokens []string // by owner - 1
}

// startCeiling starts the ceiling server with rows rows, perOwner per
// owner, and signs a token for every owner.
func startCeiling(ctx context.Context, tmp string, rows, perOwner int) (*ceiling, error) {
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
	cmd := exec.Command(exe, "--addr", addr, "--db", db, "--rows", strconv.Itoa(rows), "--per-owner", strconv.Itoa(perOwner))
	cmd.Env = append(os.Environ(), ceilingChildEnv+"="+hex.EncodeToString(key))
	p, err := launch(ctx, cmd, "http://"+addr, db, filepath.Join(tmp, "ceiling.log"))
	if err != nil {
		return nil, err
	}
	owners := max(1, (rows+perOwner-1)/perOwner)
	c := &ceiling{proc: p, tokens: make([]string, owners)}
	for i := range c.tokens {
		if c.tokens[i], err = signCeilingToken(key, int64(i+1)); err != nil {
			_ = p.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *ceiling) stop() error { return c.proc.stop() }

// gen is the request load of one ceiling.
func (c *ceiling) gen(name string) gen {
	list := func(rng *mrand.Rand) *http.Request {
		return request("GET", c.proc.url+"/list", c.tokens[rng.IntN(len(c.tokens))], nil)
	}
	insert := func(rng *mrand.Rand) *http.Request {
		title, content := recordText(rng)
		body, _ := json.Marshal(map[string]any{"title": title, "content": content, "doctor": 1 + rng.IntN(50)})
		return request("POST", c.proc.url+"/insert", c.tokens[rng.IntN(len(c.tokens))], body)
	}
	switch name {
	case ceilSelect:
		return list
	case ceilInsert:
		return insert
	case ceilMixed:
		return weighted([]int{80, 20}, []gen{list, insert})
	case ceilSignin:
		return func(rng *mrand.Rand) *http.Request {
			body, _ := json.Marshal(map[string]string{"username": "u" + strconv.Itoa(rng.IntN(ceilingUsers)), "password": benchPassword})
			return request("POST", c.proc.url+"/signin", "", body)
		}
	}
	panic("unknown ceiling " + name)
}

func signCeilingToken(key []byte, userID int64) (string, error) {
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	tok, err := jwt.NewBuilder().Claim("token_type", "access").Claim("user_id", userID).
		IssuedAt(now).Expiration(now.Add(2 * time.Hour)).JwtID(hex.EncodeToString(jti)).Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, key))
	return string(b), err
}

// ceilingChild is the ceiling server's main.
func ceilingChild(args []string) error {
	key, err := hex.DecodeString(os.Getenv(ceilingChildEnv))
	if err != nil || len(key) < 32 {
		return errors.New("bad key in " + ceilingChildEnv)
	}
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dbPath := fs.String("db", "ceiling.db", "SQLite file")
	rows := fs.Int("rows", 10000, "rows to seed")
	perOwner := fs.Int("per-owner", 10, "rows per owner")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	base := "file:" + *dbPath + "?" + ceilingPragmas
	write, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return err
	}
	defer write.Close()
	write.SetMaxOpenConns(1)
	if err := seedCeiling(ctx, write, *rows, max(1, *perOwner)); err != nil {
		return err
	}
	read, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer read.Close()
	read.SetMaxOpenConns(ceilingReadConns)
	read.SetMaxIdleConns(ceilingReadConns)

	s := &ceilingServer{key: key, read: read, write: write, hashSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("GET /list", s.list)
	mux.HandleFunc("POST /insert", s.insert)
	mux.HandleFunc("POST /signin", s.signin)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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

// seedCeiling makes the table (indexed as healthrecord's records by
// patient) and its rows, and the sign-in accounts.
func seedCeiling(ctx context.Context, db *sql.DB, rows, perOwner int) error {
	p := password.DefaultParams
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt)
	hash := argon2.IDKey([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, owner INTEGER NOT NULL, doctor INTEGER,
		   title TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
		`CREATE INDEX items_owner ON items (owner, created_at DESC, id DESC)`,
		`CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, salt BLOB NOT NULL, hash BLOB NOT NULL)`,
		`CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_at INTEGER NOT NULL)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO items (owner, doctor, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	t0 := time.Now().Add(-time.Duration(rows) * time.Millisecond).UnixNano()
	for i := range rows {
		rng := mrand.New(mrand.NewPCG(uint64(i), 7))
		title, content := recordText(rng)
		at := t0 + int64(i)*int64(time.Millisecond)
		if _, err := ins.ExecContext(ctx, 1+i/perOwner, 1+i%50, title, content, at, at); err != nil {
			return err
		}
	}
	for i := range ceilingUsers {
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, username, salt, hash) VALUES (?, ?, ?, ?)`,
			i+1, "u"+strconv.Itoa(i), salt, hash); err != nil {
			return err
		}
	}
	return tx.Commit()
}

type ceilingServer struct {
	key         []byte
	read, write *sql.DB
	hashSem     chan struct{}
}

// userID verifies the bearer token (HS256 pinned) and returns its user_id.
func (s *ceilingServer) userID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		http.Error(w, `{"detail":"no token"}`, http.StatusUnauthorized)
		return 0, false
	}
	tok, err := jwt.ParseString(h[len(prefix):], jwt.WithKey(jwa.HS256, s.key), jwt.WithValidate(true))
	if err != nil {
		http.Error(w, `{"detail":"bad token"}`, http.StatusUnauthorized)
		return 0, false
	}
	v, _ := tok.Get("user_id")
	f, ok := v.(float64)
	if !ok {
		http.Error(w, `{"detail":"bad token"}`, http.StatusUnauthorized)
		return 0, false
	}
	return int64(f), true
}

type ceilingItem struct {
	ID        int64  `json:"id"`
	Owner     int64  `json:"patient"`
	Doctor    *int64 `json:"doctor"`
	Title     string `json:"title"`
	Content   string `json:"content"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func nanosText(n int64) string { return time.Unix(0, n).UTC().Format(time.RFC3339Nano) }

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// list is one indexed 10-row SELECT.
func (s *ceilingServer) list(w http.ResponseWriter, r *http.Request) {
	owner, ok := s.userID(w, r)
	if !ok {
		return
	}
	rows, err := s.read.QueryContext(r.Context(),
		`SELECT id, owner, doctor, title, content, created_at, updated_at FROM items
		 WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT 10`, owner)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rows.Close()
	out := make([]ceilingItem, 0, 10)
	for rows.Next() {
		var it ceilingItem
		var doctor sql.NullInt64
		var c, u int64
		if err := rows.Scan(&it.ID, &it.Owner, &doctor, &it.Title, &it.Content, &c, &u); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if doctor.Valid {
			it.Doctor = &doctor.Int64
		}
		it.CreatedAt, it.UpdatedAt = nanosText(c), nanosText(u)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSONBody(w, http.StatusOK, out)
}

// insert is one single-row INSERT, committed on its own (one fsync).
func (s *ceilingServer) insert(w http.ResponseWriter, r *http.Request) {
	owner, ok := s.userID(w, r)
	if !ok {
		return
	}
	var in struct {
		Title   string `json:"title"`
		Content string `json:"content"`
		Doctor  *int64 `json:"doctor"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Title == "" {
		http.Error(w, `{"detail":"bad body"}`, http.StatusBadRequest)
		return
	}
	now := time.Now().UnixNano()
	res, err := s.write.ExecContext(r.Context(),
		`INSERT INTO items (owner, doctor, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		owner, in.Doctor, in.Title, in.Content, now, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	id, _ := res.LastInsertId()
	writeJSONBody(w, http.StatusCreated, ceilingItem{ID: id, Owner: owner, Doctor: in.Doctor, Title: in.Title,
		Content: in.Content, CreatedAt: nanosText(now), UpdatedAt: nanosText(now)})
}

// signin is a bare sign-in: look the user up, check the password with
// the same argon2id cost and concurrency bound, record a session, sign a
// token.
func (s *ceilingServer) signin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		http.Error(w, `{"detail":"bad body"}`, http.StatusBadRequest)
		return
	}
	var id int64
	var salt, hash []byte
	err := s.read.QueryRowContext(r.Context(), `SELECT id, salt, hash FROM users WHERE username = ?`, in.Username).Scan(&id, &salt, &hash)
	if err != nil {
		http.Error(w, `{"detail":"No active account found with the given credentials"}`, http.StatusUnauthorized)
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
		http.Error(w, `{"detail":"No active account found with the given credentials"}`, http.StatusUnauthorized)
		return
	}
	sid := make([]byte, 16)
	_, _ = rand.Read(sid)
	if _, err := s.write.ExecContext(r.Context(), `INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)`,
		hex.EncodeToString(sid), id, time.Now().UnixNano()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tok, err := signCeilingToken(s.key, id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSONBody(w, http.StatusOK, map[string]string{"access": tok})
}
