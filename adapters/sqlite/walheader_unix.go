//go:build unix

package sqlite

import (
	"errors"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walHeader reads the header of SQLite's WAL index, the -shm file every
// connection to the database, in any process, maps into memory: a commit
// becomes visible to readers exactly when its writer rewrites this header
// (https://sqlite.org/walformat.html, "The WAL-Index Header"), and the
// header moves with every commit (its iChange counts transactions, its
// mxFrame and checksum change, a restarted WAL gets new salts). So while
// the header reads the same, nothing has been committed, by this process
// or any other: a memory read instead of a statement.
//
// The writer stores the header twice, the second copy first; a reader
// that finds the copies equal has not caught a write halfway.
//
// The file is opened once and never closed while SQLite's connections
// are open: closing any descriptor of a file drops the process's POSIX
// locks on it, SQLite's among them. The caller holds a connection open
// for as long as it reads, so that SQLite never truncates or removes the
// file meanwhile (it does so only when no connection has it open); a
// fault on the mapping all the same turns into "cannot tell", not a crash.
type walHeader struct {
	f      *os.File
	mem    []byte
	broken atomic.Bool
}

// walHeaderWords is one copy of the header: 48 bytes.
const walHeaderWords = 12

type walStamp [walHeaderWords]uint32

func openWALHeader(dbPath string) (*walHeader, error) {
	f, err := os.Open(dbPath + "-shm")
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() < 2*4*walHeaderWords {
		err = errors.New("sqlite: the -shm file has no header yet")
	}
	var mem []byte
	if err == nil {
		mem, err = syscall.Mmap(int(f.Fd()), 0, 2*4*walHeaderWords, syscall.PROT_READ, syscall.MAP_SHARED)
	}
	if err != nil {
		// Closing here is safe only because the caller opens this before
		// relying on it: see close.
		_ = f.Close()
		return nil, err
	}
	return &walHeader{f: f, mem: mem}, nil
}

// load returns the header; ok is false while a writer is rewriting it or
// when it cannot be read.
func (w *walHeader) load() (s walStamp, ok bool) {
	if w.broken.Load() {
		return s, false
	}
	defer func() {
		if recover() != nil { // the mapping faulted: stop trusting it
			w.broken.Store(true)
			ok = false
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	words := (*[2 * walHeaderWords]uint32)(unsafe.Pointer(&w.mem[0]))
	for i := range walHeaderWords {
		s[i] = atomic.LoadUint32(&words[i])
	}
	for i := range walHeaderWords {
		if atomic.LoadUint32(&words[walHeaderWords+i]) != s[i] {
			return s, false
		}
	}
	// isInit (byte 12) is 0 until the index has been built.
	return s, (*[4]byte)(unsafe.Pointer(&s[3]))[0] == 1
}

// close unmaps and closes the file; call it only after every connection
// to the database has been closed.
func (w *walHeader) close() error {
	return errors.Join(syscall.Munmap(w.mem), w.f.Close())
}
