// Command healthrecord serves the health-record API and administers its
// database. main only parses, wires and runs; the rules live in app and
// domain.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, nil); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "healthrecord:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

const usage = `usage: healthrecord COMMAND [arguments and flags, in any order]

commands:
  serve                                  run the API and the outbox dispatcher
  migrate [status]                       apply (or list) the database migrations
  migrate-data --from sqlite://PATH --to postgres://…   copy a SQLite database into an empty PostgreSQL one
  createsuperuser [--username U] [--email E] [--noinput]
  users approve NAME | deactivate NAME | activate NAME | list [--json]
  backup FILE                            a consistent copy of the live database
  outbox list [--state S] [--sink K] [--json] | retry ID
  audit verify [--head ID:HASH] | head   check the audit trail's keyed chain; print its head
  keys rotate                            a new signing key for new tokens
  version                                version, commit and Go version (also --version)

Run "healthrecord COMMAND -h" for a command's flags.`

// run is the whole program: end-to-end tests call it with their own
// arguments, environment and streams, and learn from ready where serve
// listens (main passes nil).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer,
	ready onListening) error {
	err := dispatch(ctx, args, getenv, stdin, stdout, stderr, ready)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h and --help printed the help: a success
	}
	return err
}

// onListening is told the addresses serve bound (metrics is "" when off)
// once it accepts connections: a test that starts serve on port 0 learns
// its port here, not from the log.
type onListening func(api, metrics string)

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer,
	ready onListening) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-version":
		return cmdVersion(rest, getenv, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, getenv, stderr, ready)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "migrate-data":
		return cmdMigrateData(ctx, rest, getenv, stdout, stderr)
	case "createsuperuser":
		return cmdCreateSuperuser(ctx, rest, getenv, stdin, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, rest, getenv, stdout, stderr)
	case "outbox":
		return cmdOutbox(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("healthrecord: unknown command %q\n\n%s", cmd, usage)}
}
