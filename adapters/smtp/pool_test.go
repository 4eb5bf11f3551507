package smtp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/adapters/smtp"
	"healthrecord/domain"
	"healthrecord/ports"
)

func emailTo(i int, to string) domain.Email {
	ev := domain.OutboxEvent{ID: int64(i + 1)}
	return domain.AssignmentEmail(ev, domain.User{Username: "doc", Email: to}, domain.User{Username: "pat"}, "hr.example")
}

// A burst is carried by a few reused connections, never more than the pool.
func TestSend_BurstUsesAtMostConnectionsReused(t *testing.T) {
	srv := startServer(t, serverOpts{})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr, Connections: 4})
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- m.Send(context.Background(), emailTo(i, fmt.Sprintf("doc%d@example.com", i%10)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, srv.messages(), n)
	opened, maxOpen := srv.conns()
	t.Logf("%d messages over %d connections, at most %d open at once", n, opened, maxOpen)
	assert.LessOrEqual(t, maxOpen, 4)
	assert.Less(t, opened, n, "connections are reused")

	// Sequential sends reuse one connection, RSET between messages.
	for i := range 5 {
		require.NoError(t, m.Send(context.Background(), emailTo(100+i, "doc@example.com")))
	}
	opened2, _ := srv.conns()
	assert.Equal(t, opened, opened2, "no new connection for sequential sends")
	require.NoError(t, m.Close())
}

// A 5xx reply to RCPT is permanent; the connection serves the next message.
func TestSend_550IsPermanentOthersUnaffected(t *testing.T) {
	srv := startServer(t, serverOpts{RejectTo: "gone@example.com"})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr, Connections: 1})
	err := m.Send(context.Background(), emailTo(1, "gone@example.com"))
	require.Error(t, err)
	assert.True(t, ports.IsPermanent(err))
	assert.Contains(t, err.Error(), "550")
	require.NoError(t, m.Send(context.Background(), emailTo(2, "here@example.com")))
	assert.Len(t, srv.messages(), 1)

	// Refused connections and timeouts are transient.
	silent := silentServer(t)
	err = mustMailer(t, smtp.Config{Addr: silent, CommandTimeout: 100 * time.Millisecond}).Send(context.Background(), emailTo(3, "x@example.com"))
	require.Error(t, err)
	assert.False(t, ports.IsPermanent(err))
}

// A relay that accepts and never greets costs one command timeout, not the
// whole send timeout.
func TestSend_HungRelayBoundedByCommandTimeout(t *testing.T) {
	silent := silentServer(t)
	m := mustMailer(t, smtp.Config{Addr: silent, Timeout: time.Minute, CommandTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := m.Send(context.Background(), emailTo(1, "doc@example.com"))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "greeting")
	assert.Less(t, time.Since(start), 10*time.Second)
}

// A connection idle longer than IdleTimeout is not reused.
func TestSend_ReconnectsAfterIdle(t *testing.T) {
	srv := startServer(t, serverOpts{})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr, IdleTimeout: 50 * time.Millisecond})
	require.NoError(t, m.Send(context.Background(), emailTo(1, "doc@example.com")))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, m.Send(context.Background(), emailTo(2, "doc@example.com")))
	opened, _ := srv.conns()
	assert.Equal(t, 2, opened)
	assert.Len(t, srv.messages(), 2)
}

// A relay that dropped an idle connection costs a reconnect, not a failed
// message.
func TestSend_ReconnectsWhenTheRelayDroppedTheConnection(t *testing.T) {
	srv := startServer(t, serverOpts{IdleDrop: 100 * time.Millisecond})
	m := mustMailer(t, smtp.Config{Addr: srv.Addr})
	require.NoError(t, m.Send(context.Background(), emailTo(1, "doc@example.com")))
	time.Sleep(300 * time.Millisecond) // the relay hangs up meanwhile
	require.NoError(t, m.Send(context.Background(), emailTo(2, "doc@example.com")))
	opened, _ := srv.conns()
	assert.Equal(t, 2, opened)
	assert.Len(t, srv.messages(), 2)
}
