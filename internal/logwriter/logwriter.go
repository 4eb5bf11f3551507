// Package logwriter takes log lines off the request path.
//
// A slog handler holds its lock while it writes a line, so when many
// requests log at once each waits for every write before its own, one
// system call each. A Writer only copies the line into a queue, under a
// short lock; one goroutine writes the queue out, every line that came
// during its last write together in one write, in the order they came.
// A crash loses what is queued: the lines of the last moment, written
// as soon as the goroutine runs.
package logwriter

import (
	"io"
	"sync"
)

// DefaultMaxQueued bounds the bytes queued behind a write under way.
const DefaultMaxQueued = 1 << 20

// Writer is an io.Writer for whole log lines (one Write a line, as slog's
// handlers do), safe for concurrent use.
type Writer struct {
	out       io.Writer
	maxQueued int

	mu      sync.Mutex
	room    sync.Cond // signalled when the queue has room again, or is empty
	busy    bool      // the drainer has the queue to write: it was kicked and has not emptied it
	queued  []byte
	spare   []byte // the last queue written, reused for the next
	drain   chan struct{}
	closed  bool
	stopped chan struct{}
}

// New writes to out, queueing at most maxQueued bytes (DefaultMaxQueued
// when 0) while a write is under way; past that, writers wait (a line
// longer than that is queued alone). Close it to write what is queued
// and stop its goroutine.
func New(out io.Writer, maxQueued int) *Writer {
	if maxQueued <= 0 {
		maxQueued = DefaultMaxQueued
	}
	w := &Writer{out: out, maxQueued: maxQueued, drain: make(chan struct{}, 1), stopped: make(chan struct{})}
	w.room.L = &w.mu
	go w.drainer()
	return w
}

// Write queues a copy of p for the drainer and returns, unless the queue
// is full, when it waits for room. A write error is dropped, as slog
// drops a handler's.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.closed && len(w.queued) > 0 && len(w.queued)+len(p) > w.maxQueued {
		w.room.Wait()
	}
	if w.closed {
		// After Close, at once and in order: shutdown's last lines.
		return w.out.Write(p)
	}
	w.queued = append(w.queued, p...)
	if !w.busy {
		w.busy = true
		w.kick()
	}
	return len(p), nil
}

// Flush waits until the queue is written out: every line written before
// it, and those written meanwhile.
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy {
		w.room.Wait()
	}
}

// kick hands the queue to the drainer; w.mu is held and busy set. Each
// kick starts one drain, which ends by clearing busy, so none is left over.
func (w *Writer) kick() {
	select {
	case w.drain <- struct{}{}:
	default:
	}
}

// drainer writes the queue out, each time all that came during its last
// write, until it finds it empty; then it clears busy.
func (w *Writer) drainer() {
	defer close(w.stopped)
	for range w.drain {
		w.mu.Lock()
		for len(w.queued) > 0 {
			buf := w.queued
			w.queued = w.spare[:0]
			w.room.Broadcast()
			w.mu.Unlock()
			_, _ = w.out.Write(buf)
			w.mu.Lock()
			if cap(buf) <= w.maxQueued*2 {
				w.spare = buf // not kept when a burst grew it past the bound
			} else {
				w.spare = nil
			}
		}
		w.busy = false
		w.room.Broadcast()
		w.mu.Unlock()
	}
}

// Close flushes and stops the drainer; a line written after Close is
// written at once, still in order.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	for w.busy {
		w.room.Wait()
	}
	w.closed = true
	w.mu.Unlock()
	close(w.drain) // no kick after closed: only a Write before it kicks
	<-w.stopped
	return nil
}
