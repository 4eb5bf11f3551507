package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several processes may share one database. A write transaction that
// changed something another process acts on at once sends a NOTIFY on one
// of these channels, inside the transaction: PostgreSQL delivers it when
// (and only if) the transaction commits, and after its changes are
// visible. The payload names the sending process, so a process skips its
// own notifications: it has acted on its own commits already.
const (
	chanOutbox   = "healthrecord_outbox"   // outbox events added or re-queued
	chanRevoked  = "healthrecord_revoked"  // sign-ins revoked
	chanNotified = "healthrecord_notified" // in-API notifications stored
)

// ListenAppName is the application_name of the listening connection, by
// which an operator (or a test) finds it in pg_stat_activity.
const ListenAppName = "healthrecord-listen"

// The listening connection is checked this often when quiet, so a
// connection lost without a word (a dropped network) is noticed; a check
// unanswered for listenPingTimeout counts as lost.
const (
	defaultListenKeepalive = 30 * time.Second
	listenPingTimeout      = 5 * time.Second
	listenConnectTimeout   = 10 * time.Second
)

// Reconnecting waits from minListenDelay, doubling up to maxListenDelay.
const (
	minListenDelay = 100 * time.Millisecond
	maxListenDelay = 5 * time.Second
)

// Remote is what Listen calls when another process on the database has
// committed a change. Each runs on the listening goroutine, one at a
// time; a notification waits meanwhile, so each must be short. A nil
// field is not called.
type Remote struct {
	// Outbox: outbox events were added or re-queued (wake the dispatcher).
	Outbox func()
	// Revoked: sign-ins were revoked (load them).
	Revoked func()
	// Notified: in-API notifications were stored (wake live streams).
	Notified func()
}

// all calls every hook: after (re)connecting, since changes committed
// while nothing listened were not announced.
func (h Remote) all() {
	for _, fn := range []func(){h.Outbox, h.Revoked, h.Notified} {
		if fn != nil {
			fn()
		}
	}
}

func (h Remote) on(channel string) {
	var fn func()
	switch channel {
	case chanOutbox:
		fn = h.Outbox
	case chanRevoked:
		fn = h.Revoked
	case chanNotified:
		fn = h.Notified
	}
	if fn != nil {
		fn()
	}
}

// Listen keeps one dedicated connection LISTENing for other processes'
// commits and calls h's hooks for them, until ctx ends. A lost connection
// is reopened, waiting longer after each failure; after every (re)connect
// all hooks are called once for what may have been missed. Callers keep
// polling as well: a notification is a shortcut, never the only way a
// change is found.
func (db *DB) Listen(ctx context.Context, h Remote) {
	var delay time.Duration
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, h, func() { delay = 0 })
		if ctx.Err() != nil {
			return
		}
		delay = min(max(2*delay, minListenDelay), maxListenDelay)
		db.log.Warn("postgres: listening for other instances failed; reconnecting", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// listenOnce connects, listens and calls hooks until the connection fails
// or ctx ends; connected is called once it listens.
func (db *DB) listenOnce(ctx context.Context, h Remote, connected func()) error {
	cfg := db.connConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenAppName
	// Bounded: a connect into a silent network would otherwise wait for
	// the operating system to give up.
	cctx, cancel := context.WithTimeout(ctx, listenConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err) // names user and database, never the password
	}
	defer func() {
		// Bounded: on a lost network the goodbye may never go out.
		cctx, cancel := context.WithTimeout(context.Background(), listenPingTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{chanOutbox, chanRevoked, chanNotified} {
		if _, err := conn.Exec(cctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	connected()
	db.log.Info("postgres: listening for other instances' changes")
	h.all()
	for {
		wctx, cancel := context.WithTimeout(ctx, db.listenKeepalive)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if n != nil && n.Payload != db.instance {
				h.on(n.Channel)
			}
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet: make sure the connection is still there.
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
		default:
			return fmt.Errorf("wait: %w", err)
		}
	}
}

// queueNotify queues the announcement of t's changes to the other
// processes; PostgreSQL sends it when t commits.
func (db *DB) queueNotify(b *pgx.Batch, t *txn) {
	for _, c := range []struct {
		changed bool
		channel string
	}{{t.outboxChanged, chanOutbox}, {t.revoked, chanRevoked}, {t.notified, chanNotified}} {
		if c.changed {
			b.Queue(`SELECT pg_notify($1, $2)`, c.channel, db.instance)
		}
	}
}
