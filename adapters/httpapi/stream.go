package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StreamConfig tunes GET /api/notifications/stream/.
type StreamConfig struct {
	// Heartbeat is the longest silence on an open stream: a comment line
	// is sent then, so proxies and clients know it is alive. Default 15s
	// (the contract promises at least one every 30 s).
	Heartbeat time.Duration
	// Poll is how often a stream looks for notifications stored by another
	// process; this process's own wake it at once. Default 500ms, well
	// within the contract's second.
	Poll time.Duration
	// PerUser bounds the streams one user may hold open; more get 429.
	// Default 4.
	PerUser int
	// WriteTimeout bounds one write to a stream's client; a client that
	// reads nothing for that long loses its stream. Default 10s.
	WriteTimeout time.Duration
	// Done, when closed, ends every open stream: the server's shutdown
	// would otherwise wait for them until its deadline.
	Done <-chan struct{}
}

func (c *StreamConfig) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.PerUser <= 0 {
		c.PerUser = 4
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
}

// streamBatch is how many notifications one poll sends at most; a longer
// backlog is sent in several batches without waiting.
const streamBatch = 100

const msgTooManyStreams = "Too many open notification streams."

// openStreams counts each user's open streams.
type openStreams struct {
	mu sync.Mutex
	n  map[int64]int
}

// acquire takes one of the user's max streams; false when all are taken.
func (o *openStreams) acquire(user int64, limit int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[int64]int{}
	}
	if o.n[user] >= limit {
		return false
	}
	o.n[user]++
	return true
}

func (o *openStreams) release(user int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n[user]--; o.n[user] <= 0 {
		delete(o.n, user) // the map holds only users with open streams
	}
}

// notificationStream sends the caller's new notifications as Server-Sent
// Events until the access token expires or is revoked, the client leaves
// or the server shuts down. The token is checked again at every poll, so
// a revocation (also by another process) ends the stream within about a
// second.
func (s *server) notificationStream(w http.ResponseWriter, r *http.Request) {
	actor := actorOf(r)
	token := bearerToken(r)
	last, resume := lastEventID(r)
	if resume && last < 0 {
		writeJSON(w, http.StatusBadRequest, detail("Last-Event-ID must be the id of a notification."))
		return
	}
	if !s.streams.acquire(actor.ID, s.cfg.Stream.PerUser) {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.Stream.Heartbeat/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, detail(msgTooManyStreams))
		return
	}
	defer s.streams.release(actor.ID)

	// The server's read and write timeouts are meant for ordinary requests;
	// this one lives as long as its token, so each write gets a deadline of
	// its own instead, and the read deadline (which would cancel the
	// request when it passes) is lifted.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)

	cfg := s.cfg.Stream
	var buf bytes.Buffer
	send := func() bool {
		if buf.Len() == 0 {
			return true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	ctx := r.Context()
	if !resume {
		// A new stream starts after what exists now; the list endpoint
		// serves the history. Read before the client hears "connected":
		// whatever is stored after that must reach it.
		var err error
		if last, err = s.app.LatestNotificationID(ctx, actor); err != nil {
			s.logger(r).Error("notification stream", "err", err)
			return
		}
	}
	buf.WriteString(": connected\nretry: 2000\n\n")
	if !send() {
		return
	}
	poll := time.NewTicker(cfg.Poll)
	defer poll.Stop()
	heartbeat := time.NewTimer(cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		for {
			items, err := s.app.NotificationsAfter(ctx, actor, last, streamBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.logger(r).Error("notification stream", "err", err)
				}
				return
			}
			for _, n := range items {
				data, err := json.Marshal(toNotification(n))
				if err != nil {
					s.logger(r).Error("notification stream", "err", err)
					return
				}
				last = n.ID
				buf.WriteString("id: " + strconv.FormatInt(n.ID, 10) + "\nevent: notification\ndata: ")
				buf.Write(data)
				buf.WriteString("\n\n")
			}
			if len(items) > 0 {
				if !send() {
					return
				}
				heartbeat.Reset(cfg.Heartbeat)
			}
			if len(items) < streamBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-cfg.Done:
			return
		case <-heartbeat.C:
			buf.WriteString(": keep-alive\n\n")
			if !send() {
				return
			}
			heartbeat.Reset(cfg.Heartbeat)
		case <-poll.C:
		case <-s.app.NotificationWake():
		}
		// An expired or revoked token ends the stream, as it would end any
		// other request.
		if _, err := s.app.Authenticate(ctx, token); err != nil {
			return
		}
	}
}

// bearerToken is the request's access token; authenticate has checked
// its form already.
func bearerToken(r *http.Request) string {
	parts := strings.Fields(r.Header.Get("Authorization"))
	if len(parts) != 2 {
		return ""
	}
	return parts[1]
}

// lastEventID reads the id a reconnecting client last received, and
// whether it sent one; -1 when it is not a non-negative integer.
func lastEventID(r *http.Request) (int64, bool) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1, true
	}
	return n, true
}
