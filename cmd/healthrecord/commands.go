package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/adapters/sqlite"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/ports"
)

// requireDB refuses a database file that does not exist: every command
// but serve, migrate and createsuperuser works on an existing database,
// and creating one on a typo'd path would answer from an empty database
// (an "intact" audit trail, an empty backup).
func requireDB(c config) error {
	if isPostgres(c.DB) {
		return nil
	}
	fi, err := os.Stat(c.DB)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no database at %s (set --db or HEALTHRECORD_DB; `healthrecord migrate` or `serve` creates one)", c.DB)
	}
	if err != nil {
		return fmt.Errorf("database %s: %w", c.DB, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("database %s is not a regular file", c.DB)
	}
	return nil
}

// command describes one CLI command for withApp.
type command struct {
	name, use        string
	minArgs, maxArgs int
	// createsDB is true only for createsuperuser: the others refuse a
	// database that does not exist.
	createsDB bool
	flags     func(fs *flagSet)
	// check refuses a malformed command line before the database is
	// touched; nil accepts any.
	check func(rest []string) error
}

// withApp parses the common flags and the command's own, opens and
// migrates the database and runs fn with an application that issues no
// tokens.
func withApp(ctx context.Context, cmd command, args []string, getenv func(string) string, stderr io.Writer,
	fn func(a *app.App, c config, rest []string) error) error {
	var c config
	fs := newFlagSet(cmd.name, getenv, stderr, cmd.use)
	fs.dbFlags(&c)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if err := fs.parseArgs(args, cmd.minArgs, cmd.maxArgs); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if cmd.check != nil {
		if err := cmd.check(fs.Args()); err != nil {
			return err
		}
	}
	if !cmd.createsDB {
		if err := requireDB(c); err != nil {
			return err
		}
	}
	db, err := openDB(ctx, c, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(newApp(db, nil, nil, nil, nil, c, newLogger(stderr, c.LogLevel)), c, fs.Args())
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("migrate", getenv, stderr, "usage: healthrecord migrate [status]")
	fs.dbFlags(&c)
	if err := fs.parseArgs(args, 0, 1); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 1 && rest[0] != "status" {
		return usageError{fmt.Sprintf("unknown argument %q\nusage: healthrecord migrate [status]", rest[0])}
	}
	db, err := openUnmigrated(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) == 0 {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}
	st, err := db.MigrationStates(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
	}
	return nil
}

// prompter asks the operator for createsuperuser's missing values. A
// terminal is the real one; tests pass a scripted one as stdin.
type prompter interface {
	// Line asks for a visible answer.
	Line(prompt string) (string, error)
	// Secret asks for an answer without echo.
	Secret(prompt string) (string, error)
}

// passwordTries is how many times createsuperuser asks for a password that
// matches its repetition and passes the validators, as Django does.
const passwordTries = 3

func cmdCreateSuperuser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var username, email string
	var noinput bool
	cmd := command{
		name: "createsuperuser", use: "usage: healthrecord createsuperuser [--username U] [--email E] [--noinput]",
		createsDB: true,
		flags: func(fs *flagSet) {
			fs.StringVar(&username, "username", "", "the admin's username (asked for when missing)")
			fs.StringVar(&email, "email", "", "the admin's email address (asked for when missing)")
			fs.BoolVar(&noinput, "noinput", false, "ask nothing: the password comes from HEALTHRECORD_SUPERUSER_PASSWORD")
		},
	}
	return withApp(ctx, cmd, args, getenv, stderr, func(a *app.App, _ config, _ []string) error {
		var pw string
		if noinput {
			if username == "" || email == "" {
				return usageError{"--noinput needs --username and --email"}
			}
			if pw = getenv("HEALTHRECORD_SUPERUSER_PASSWORD"); pw == "" {
				return errors.New("--noinput needs the password in HEALTHRECORD_SUPERUSER_PASSWORD")
			}
		} else {
			p, err := terminalPrompter(stdin, stderr)
			if err != nil {
				return err
			}
			if username, email, pw, err = askSuperuser(p, username, email, stderr); err != nil {
				return err
			}
		}
		u, err := a.CreateSuperuser(ctx, username, email, pw)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Superuser %q created (id %d).\n", u.Username, u.ID)
		return nil
	})
}

// askSuperuser asks for what the flags did not give, like Django's
// createsuperuser: a blank answer is asked again, and so is a password
// that does not match its repetition or that the validators refuse, up to
// passwordTries times.
func askSuperuser(p prompter, username, email string, stderr io.Writer) (string, string, string, error) {
	ask := func(value *string, prompt, blank string) error {
		for tries := 0; *value == ""; tries++ {
			if tries == passwordTries {
				return errors.New(blank)
			}
			v, err := p.Line(prompt)
			if err != nil {
				return err
			}
			if *value = strings.TrimSpace(v); *value == "" {
				fmt.Fprintln(stderr, "Error: This field cannot be blank.")
			}
		}
		return nil
	}
	if err := ask(&username, "Username: ", "no username given"); err != nil {
		return "", "", "", err
	}
	if err := ask(&email, "Email address: ", "no email address given"); err != nil {
		return "", "", "", err
	}
	for range passwordTries {
		p1, err := p.Secret("Password: ")
		if err != nil {
			return "", "", "", err
		}
		p2, err := p.Secret("Password (again): ")
		if err != nil {
			return "", "", "", err
		}
		if p1 != p2 {
			fmt.Fprintln(stderr, "Error: Your passwords didn't match.")
			continue
		}
		if strings.TrimSpace(p1) == "" {
			fmt.Fprintln(stderr, "Error: Blank passwords aren't allowed.")
			continue
		}
		if problems := domain.PasswordProblems(p1, username, email); len(problems) > 0 {
			fmt.Fprintln(stderr, strings.Join(problems, "\n"))
			continue
		}
		return username, email, p1, nil
	}
	return "", "", "", fmt.Errorf("no acceptable password after %d tries", passwordTries)
}

// terminalPrompter asks on the terminal that stdin is; without one it
// refuses, pointing to --noinput.
func terminalPrompter(stdin io.Reader, stderr io.Writer) (prompter, error) {
	if p, ok := stdin.(prompter); ok {
		return p, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return nil, errors.New("no terminal to ask for a password: use --noinput with HEALTHRECORD_SUPERUSER_PASSWORD")
	}
	return newTTYPrompter(f, stderr), nil
}

// describe turns a domain error into a message for the operator.
func describe(err error) error {
	var de *domain.Error
	if errors.As(err, &de) && len(de.Fields) > 0 {
		var b strings.Builder
		for f, msgs := range de.Fields {
			fmt.Fprintf(&b, "%s: %s; ", f, strings.Join(msgs, " "))
		}
		return errors.New(strings.TrimSuffix(b.String(), "; "))
	}
	if errors.As(err, &de) && de.Code != domain.EInternal {
		return errors.New(de.Message)
	}
	return err
}

// printJSON writes v indented, as the admin API would show it.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdUsers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord users approve NAME | deactivate NAME | activate NAME | list [--json]"
	var asJSON bool
	ops := map[string]app.UserOp{"approve": app.OpApprove, "deactivate": app.OpDeactivate, "activate": app.OpActivate}
	cmd := command{name: "users", use: use, minArgs: 1, maxArgs: 2, flags: func(fs *flagSet) {
		fs.BoolVar(&asJSON, "json", false, "list: print JSON instead of a table")
	}, check: func(rest []string) error {
		_, isOp := ops[rest[0]]
		switch {
		case !isOp && rest[0] != "list":
			return usageError{fmt.Sprintf("unknown argument %q\n%s", rest[0], use)}
		case isOp && (len(rest) != 2 || asJSON), !isOp && len(rest) != 1:
			return usageError{use}
		}
		return nil
	}}
	return withApp(ctx, cmd, args, getenv, stderr, func(a *app.App, _ config, rest []string) error {
		sub := rest[0]
		if op, ok := ops[sub]; ok {
			u, err := a.SetUserByName(ctx, rest[1], op)
			if err != nil {
				if domain.ErrorCode(err) == domain.ENotFound {
					return fmt.Errorf("no user named %q", rest[1])
				}
				return describe(err)
			}
			fmt.Fprintf(stdout, "%s: %s (approved=%t, active=%t)\n", u.Username, sub+"d", u.Approved, u.Active)
			return nil
		}
		all, err := allPages(func(p domain.Page) ([]domain.User, *domain.Cursor, error) {
			return a.ListUsers(ctx, ports.UserFilter{}, p)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSONList(stdout, all, httpapi.UserJSON)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tROLE\tAPPROVED\tACTIVE")
		for _, u := range all {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%t\n", u.ID, u.Username, u.Email, u.Role, u.Approved, u.Active)
		}
		return tw.Flush()
	})
}

func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("backup", getenv, stderr, "usage: healthrecord backup FILE")
	fs.dbFlags(&c)
	if err := fs.parseArgs(args, 1, 1); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if isPostgres(c.DB) {
		return errPostgresBackup
	}
	if err := requireDB(c); err != nil {
		return err
	}
	db, err := sqlite.Open(ctx, c.DB)
	if err != nil {
		return inFile("database", c.DB, err)
	}
	defer db.Close()
	if err := db.Backup(ctx, fs.Arg(0)); err != nil {
		return inFile("backup", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "Backup written to %s (integrity check ok).\n", fs.Arg(0))
	return nil
}

func cmdOutbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord outbox list [--state S] [--sink notification|email] [--json] | retry ID"
	var f ports.OutboxFilter
	var asJSON bool
	cmd := command{name: "outbox", use: use, minArgs: 1, maxArgs: 2, flags: func(fs *flagSet) {
		fs.StringVar(&f.State, "state", "", "list: only events in this state: pending, delivered or dead (with --sink: that sink's state)")
		fs.StringVar(&f.Sink, "sink", "", "list: only events with a delivery through this sink: notification or email")
		fs.BoolVar(&asJSON, "json", false, "list: print JSON instead of a table")
	}, check: func(rest []string) error {
		switch {
		case rest[0] == "list" && len(rest) == 1:
			return nil
		case rest[0] == "retry" && len(rest) == 2 && f.State == "" && f.Sink == "" && !asJSON:
			if id, err := strconv.ParseInt(rest[1], 10, 64); err != nil || id < 1 {
				return usageError{fmt.Sprintf("%q is not an event id\n%s", rest[1], use)}
			}
			return nil
		}
		return usageError{use}
	}}
	return withApp(ctx, cmd, args, getenv, stderr, func(a *app.App, _ config, rest []string) error {
		switch {
		case rest[0] == "list" && len(rest) == 1:
			all, err := allPages(func(p domain.Page) ([]domain.OutboxEvent, *domain.Cursor, error) {
				return a.OutboxList(ctx, f, p)
			})
			if err != nil {
				return describe(err)
			}
			if asJSON {
				return printJSONList(stdout, all, httpapi.OutboxJSON)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tRECORD\tSTATE\tSINKS\tATTEMPTS\tCREATED\tNEXT ATTEMPT\tLAST ERROR")
			for _, e := range all {
				next := "-"
				if e.State == domain.OutboxPending {
					next = e.NextAttemptAt.UTC().Format(time.RFC3339)
				}
				sinks := make([]string, 0, len(e.Deliveries))
				for _, d := range e.Deliveries {
					sinks = append(sinks, d.Sink+":"+d.State)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", e.ID, e.Kind, e.RecordID, e.State, oneLine(strings.Join(sinks, " "), 60), e.Attempts,
					e.CreatedAt.UTC().Format(time.RFC3339), next, oneLine(e.LastError, 60))
			}
			return tw.Flush()
		default: // retry ID, checked above
			id, _ := strconv.ParseInt(rest[1], 10, 64)
			e, err := a.OutboxRetry(ctx, id)
			if err != nil {
				return describe(err)
			}
			return printJSON(stdout, httpapi.OutboxJSON(e))
		}
	})
}

// oneLine shortens s for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord audit verify [--head ID:HASH] | head"
	var kept string
	cmd := command{name: "audit", use: use, minArgs: 1, maxArgs: 1, flags: func(fs *flagSet) {
		fs.StringVar(&kept, "head", "", "verify: a head printed earlier by `audit head`, as ID:HASH, that must still be in the chain")
	}, check: func(rest []string) error {
		switch {
		case rest[0] != "verify" && rest[0] != "head":
			return usageError{fmt.Sprintf("unknown argument %q\n%s", rest[0], use)}
		case rest[0] == "head" && kept != "":
			return usageError{"--head goes with audit verify\n" + use}
		}
		if _, ok := parseHead(kept); kept != "" && !ok {
			return usageError{"--head must be ID:HASH as `healthrecord audit head` prints them (id, 64 hex digits)"}
		}
		return nil
	}}
	return withApp(ctx, cmd, args, getenv, stderr, func(a *app.App, _ config, rest []string) error {
		if rest[0] == "head" {
			h, c, err := a.AuditHead(ctx)
			if err != nil {
				return err
			}
			if !c.OK() {
				return fmt.Errorf("audit trail broken at entry %d: no head to keep (run audit verify)", c.FirstBroken)
			}
			return json.NewEncoder(stdout).Encode(struct {
				ID   int64  `json:"id"`
				Hash string `json:"hash"`
			}{h.ID, h.Hash})
		}
		var since *domain.AuditHead
		if kept != "" {
			h, _ := parseHead(kept)
			since = &h
		}
		c, err := a.CheckAudit(ctx, since)
		if err != nil {
			return err
		}
		if !c.OK() {
			why := "it was edited, or an entry before it was deleted or re-chained"
			if since != nil {
				why += ", or the chain no longer reaches the head kept (" + kept + ")"
			}
			return fmt.Errorf("audit trail broken at entry %d of %d: %s", c.FirstBroken, c.Entries, why)
		}
		fmt.Fprintf(stdout, "Audit trail intact: %d entries.\n", c.Entries)
		return nil
	})
}

// parseHead reads ID:HASH.
func parseHead(s string) (domain.AuditHead, bool) {
	id, hash, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || n < 1 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return domain.AuditHead{}, false
	}
	return domain.AuditHead{ID: n, Hash: hash}, true
}

func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord keys rotate [--refresh-ttl D]"
	var keep time.Duration
	cmd := command{name: "keys", use: use, minArgs: 1, maxArgs: 1, flags: func(fs *flagSet) {
		fs.dur(&keep, "refresh-ttl", "HEALTHRECORD_REFRESH_TTL", 24*time.Hour, "refresh token lifetime: how long the previous key keeps verifying")
	}, check: func(rest []string) error {
		if rest[0] != "rotate" {
			return usageError{fmt.Sprintf("unknown argument %q\n%s", rest[0], use)}
		}
		return nil
	}}
	return withApp(ctx, cmd, args, getenv, stderr, func(a *app.App, c config, _ []string) error {
		kid, err := jwt.Rotate(c.KeyFile, time.Now(), keep)
		if err != nil {
			return inFile("key file", c.KeyFile, err)
		}
		if err := a.KeysRotated(ctx); err != nil {
			return fmt.Errorf("new signing key %s in %s, but the audit entry failed: %w", kid, c.KeyFile, err)
		}
		fmt.Fprintf(stdout, "New signing key %s in %s; tokens of the previous key stay valid until they expire.\n", kid, c.KeyFile)
		return nil
	})
}

// allPages collects every page of a list use case, in the largest pages
// the domain allows: the CLI prints whole lists.
func allPages[T any](list func(domain.Page) ([]T, *domain.Cursor, error)) ([]T, error) {
	var all []T
	p := domain.Page{Limit: domain.MaxPageSize}
	for {
		items, next, err := list(p)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == nil {
			return all, nil
		}
		p.After = next
	}
}

// printJSONList prints items as a JSON array in the API's shape.
func printJSONList[T, V any](w io.Writer, items []T, view func(T) V) error {
	out := make([]V, 0, len(items))
	for _, it := range items {
		out = append(out, view(it))
	}
	return printJSON(w, out)
}
