package logwriter_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/internal/logwriter"
)

// gate is an out whose writes wait until released, so that lines can be
// made to come while a write is under way.
type gate struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 100), release: make(chan struct{}, 100)}
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	return g.buf.Write(p)
}

func (g *gate) String() string { g.mu.Lock(); defer g.mu.Unlock(); return g.buf.String() }

// lockedBuffer is an out that writes at once.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func TestWriter_FlushWritesWhatIsQueued(t *testing.T) {
	var out lockedBuffer
	w := logwriter.New(&out, 0)
	defer w.Close()
	for i := range 3 {
		n, err := w.Write([]byte(fmt.Sprintf("line %d\n", i)))
		require.NoError(t, err)
		assert.Equal(t, 7, n)
		w.Flush()
		assert.Equal(t, i+1, strings.Count(out.String(), "\n"), "written out by the time Flush returns")
	}
}

func TestWriter_QueuesDuringAWriteAndKeepsOrder(t *testing.T) {
	g := newGate()
	w := logwriter.New(g, 0)
	_, err := w.Write([]byte("first\n"))
	require.NoError(t, err)
	<-g.entered // the first line's write is under way
	for i := range 5 {
		_, err := w.Write([]byte(fmt.Sprintf("queued %d\n", i))) // returns without waiting
		require.NoError(t, err)
	}
	g.release <- struct{}{}
	<-g.entered // the queue, in one write
	g.release <- struct{}{}
	require.NoError(t, w.Close())
	assert.Equal(t, "first\nqueued 0\nqueued 1\nqueued 2\nqueued 3\nqueued 4\n", g.String())
	assert.Equal(t, 2, g.writes)

	close(g.release) // after Close: written at once
	go func() {
		for range g.entered {
		}
	}()
	_, err = w.Write([]byte("after\n"))
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(g.String(), "queued 4\nafter\n"))
}

func TestWriter_BoundedQueueWaits(t *testing.T) {
	g := newGate()
	w := logwriter.New(g, 16)
	_, _ = w.Write([]byte("first\n"))
	<-g.entered
	_, _ = w.Write([]byte("0123456789\n")) // 11 bytes queued
	done := make(chan struct{})
	go func() { _, _ = w.Write([]byte("abcdefghij\n")); close(done) }()
	select {
	case <-done:
		t.Fatal("a line past the bound was queued without waiting")
	case <-time.After(50 * time.Millisecond):
	}
	g.release <- struct{}{} // the first line; then the queue's write starts, which makes room
	<-g.entered
	<-done
	g.release <- struct{}{}
	<-g.entered
	g.release <- struct{}{}
	require.NoError(t, w.Close())
	assert.Equal(t, "first\n0123456789\nabcdefghij\n", g.String())
}

func TestWriter_ConcurrentLinesStayWhole(t *testing.T) {
	var out lockedBuffer
	w := logwriter.New(&out, 256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_, _ = w.Write([]byte(fmt.Sprintf("writer %d line %03d\n", g, i)))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, w.Close())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 8*500)
	next := map[int]int{}
	for _, l := range lines {
		var g, i int
		_, err := fmt.Sscanf(l, "writer %d line %d", &g, &i)
		require.NoError(t, err, l)
		require.Equal(t, next[g], i, "each writer's lines in its order")
		next[g]++
	}
}

// BenchmarkLogLines writes log-sized lines to a file from many goroutines
// at once, as the access log does under load: directly (every line waits
// for the writes before it) and through a Writer.
func BenchmarkLogLines(b *testing.B) {
	line := []byte(`{"time":"2026-12-06T05:07:04.687624741Z","level":"INFO","msg":"request","method":"GET",` +
		`"route":"/api/records/{id}/","status":200,"duration_us":31,"bytes":610,"request_id":"81a185ca918b57e14c718db85a9fded3","remote":"127.0.0.1"}` + "\n")
	run := func(b *testing.B, wrap func(io.Writer) (io.Writer, func() error)) {
		f, err := os.Create(filepath.Join(b.TempDir(), "log"))
		require.NoError(b, err)
		defer f.Close()
		var mu sync.Mutex // slog's handler lock
		w, closeFn := wrap(f)
		b.SetParallelism(16)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				_, _ = w.Write(line)
				mu.Unlock()
			}
		})
		require.NoError(b, closeFn())
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func(f io.Writer) (io.Writer, func() error) { return f, func() error { return nil } })
	})
	b.Run("writer", func(b *testing.B) {
		run(b, func(f io.Writer) (io.Writer, func() error) { w := logwriter.New(f, 0); return w, w.Close })
	})
}
