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

	"golang.org/x/term"

	"healthrecord/adapters/httpapi"
	"healthrecord/adapters/jwt"
	"healthrecord/app"
	"healthrecord/domain"
	"healthrecord/ports"
)

// withApp parses the common flags, opens and migrates the database and
// runs fn with an application that issues no tokens.
func withApp(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	extra func(fs *flagSet), fn func(a *app.App, c config, rest []string) error) error {
	var c config
	fs := newFlagSet(name, getenv, stderr)
	fs.dbFlags(&c)
	if extra != nil {
		extra(fs)
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(newApp(db, nil, nil, c, newLogger(stderr, c.LogLevel)), c, fs.Args())
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("migrate", getenv, stderr)
	fs.dbFlags(&c)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 1 || (len(rest) == 1 && rest[0] != "status") {
		return usageError{"usage: healthrecord migrate [status]"}
	}
	db, err := sqliteOpen(ctx, c.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) == 0 {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}
	st, err := db.MigrationStatus(ctx)
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

func cmdCreateSuperuser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var username, email string
	var noinput bool
	return withApp(ctx, "createsuperuser", args, getenv, stderr, func(fs *flagSet) {
		fs.StringVar(&username, "username", "", "the admin's username")
		fs.StringVar(&email, "email", "", "the admin's email address")
		fs.BoolVar(&noinput, "noinput", false, "take the password from HEALTHRECORD_SUPERUSER_PASSWORD")
	}, func(a *app.App, _ config, _ []string) error {
		if username == "" || email == "" {
			return usageError{"usage: healthrecord createsuperuser --username U --email E [--noinput]"}
		}
		pw, err := superuserPassword(noinput, getenv, stdin, stderr)
		if err != nil {
			return err
		}
		u, err := a.CreateSuperuser(ctx, username, email, pw)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Superuser %q created (id %d).\n", u.Username, u.ID)
		return nil
	})
}

// superuserPassword reads the password without echo from a terminal, or
// with --noinput from the environment; with neither it refuses.
func superuserPassword(noinput bool, getenv func(string) string, stdin io.Reader, stderr io.Writer) (string, error) {
	if noinput {
		pw := getenv("HEALTHRECORD_SUPERUSER_PASSWORD")
		if pw == "" {
			return "", errors.New("--noinput needs the password in HEALTHRECORD_SUPERUSER_PASSWORD")
		}
		return pw, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to ask for a password: use --noinput with HEALTHRECORD_SUPERUSER_PASSWORD")
	}
	fmt.Fprint(stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(stderr, "Password (again): ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("passwords do not match")
	}
	return string(p1), nil
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

func cmdUsers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord users approve NAME | deactivate NAME | activate NAME | list"
	if len(args) == 0 {
		return usageError{use}
	}
	sub := args[0]
	return withApp(ctx, "users "+sub, args[1:], getenv, stderr, nil, func(a *app.App, _ config, rest []string) error {
		ops := map[string]app.UserOp{"approve": app.OpApprove, "deactivate": app.OpDeactivate, "activate": app.OpActivate}
		if op, ok := ops[sub]; ok {
			if len(rest) != 1 {
				return usageError{use}
			}
			u, err := a.SetUserByName(ctx, rest[0], op)
			if err != nil {
				if domain.ErrorCode(err) == domain.ENotFound {
					return fmt.Errorf("no user named %q", rest[0])
				}
				return describe(err)
			}
			fmt.Fprintf(stdout, "%s: %s (approved=%t, active=%t)\n", u.Username, sub+"d", u.Approved, u.Active)
			return nil
		}
		if sub != "list" || len(rest) != 0 {
			return usageError{use}
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tROLE\tAPPROVED\tACTIVE")
		p := domain.Page{Limit: domain.MaxPageSize}
		for {
			users, next, err := a.ListUsers(ctx, ports.UserFilter{}, p)
			if err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%t\n", u.ID, u.Username, u.Email, u.Role, u.Approved, u.Active)
			}
			if next == nil {
				break
			}
			p.After = next
		}
		return tw.Flush()
	})
}

func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("backup", getenv, stderr)
	fs.dbFlags(&c)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: healthrecord backup FILE"}
	}
	db, err := sqliteOpen(ctx, c.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backup written to %s (integrity check ok).\n", fs.Arg(0))
	return nil
}

func cmdOutbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const use = "usage: healthrecord outbox list [--state S] [--sink notification|email] | retry ID"
	if len(args) == 0 {
		return usageError{use}
	}
	sub := args[0]
	var f ports.OutboxFilter
	return withApp(ctx, "outbox "+sub, args[1:], getenv, stderr, func(fs *flagSet) {
		if sub == "list" {
			fs.StringVar(&f.State, "state", "", "pending, delivered or dead (with --sink: that sink's state)")
			fs.StringVar(&f.Sink, "sink", "", "only events with a delivery through this sink: notification or email")
		}
	}, func(a *app.App, _ config, rest []string) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		switch {
		case sub == "list" && len(rest) == 0:
			var all []any
			p := domain.Page{Limit: domain.MaxPageSize}
			for {
				events, next, err := a.OutboxList(ctx, f, p)
				if err != nil {
					return describe(err)
				}
				for _, e := range events {
					all = append(all, httpapi.OutboxJSON(e))
				}
				if next == nil {
					break
				}
				p.After = next
			}
			if all == nil {
				all = []any{}
			}
			return enc.Encode(all)
		case sub == "retry" && len(rest) == 1:
			id, err := strconv.ParseInt(rest[0], 10, 64)
			if err != nil {
				return usageError{use}
			}
			e, err := a.OutboxRetry(ctx, id)
			if err != nil {
				return describe(err)
			}
			return enc.Encode(httpapi.OutboxJSON(e))
		}
		return usageError{use}
	})
}

func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError{"usage: healthrecord audit verify"}
	}
	return withApp(ctx, "audit verify", args[1:], getenv, stderr, nil, func(a *app.App, _ config, rest []string) error {
		if len(rest) != 0 {
			return usageError{"usage: healthrecord audit verify"}
		}
		broken, err := a.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		if broken != 0 {
			return fmt.Errorf("audit trail broken at entry %d: it was edited, or an entry before it was deleted", broken)
		}
		fmt.Fprintln(stdout, "Audit trail intact.")
		return nil
	})
}

func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usageError{"usage: healthrecord keys rotate"}
	}
	var c config
	fs := newFlagSet("keys rotate", getenv, stderr)
	fs.dbFlags(&c)
	fs.dur(&c.RefreshTTL, "refresh-ttl", "HEALTHRECORD_REFRESH_TTL", 24*time.Hour, "refresh token lifetime: how long the previous key keeps verifying")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	kid, err := jwt.Rotate(c.KeyFile, time.Now(), c.RefreshTTL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "New signing key %s in %s; tokens of the previous key stay valid until they expire.\n", kid, c.KeyFile)
	return nil
}
