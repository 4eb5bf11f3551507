//go:build unix

package sqlite

import (
	"errors"
	"os"
	"runtime/debug"
	"sync"
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
// The file is opened once per process and file and never closed: closing
// any descriptor of a file drops the process's POSIX locks on it, SQLite's
// among them (whichever DB handle of this process holds them), so one
// descriptor and one mapped page per database file stay for the process's
// life. The caller holds a connection open for as long as it reads, so
// that SQLite never truncates or removes the file meanwhile (it does so
// only when no connection has it open); a fault on the mapping all the
// same turns into "cannot tell", not a crash.
type walHeader struct {
	f      *os.File
	mem    []byte
	broken atomic.Bool
}

// walHeaderWords is one copy of the header: 48 bytes.
const walHeaderWords = 12

type walStamp [walHeaderWords]uint32

// walHeaders are the headers this process maps, by the -shm file's
// device and inode; kept: see walHeader.
var walHeaders struct {
	sync.Mutex
	m    map[[2]uint64]*walHeader
	kept []*os.File // descriptors opened twice for one file by a race, kept open all the same
}

// watchWALHeader returns the header of the database at dbPath, mapping
// it the first time.
func watchWALHeader(dbPath string) (*walHeader, error) {
	walHeaders.Lock()
	defer walHeaders.Unlock()
	if walHeaders.m == nil {
		walHeaders.m = map[[2]uint64]*walHeader{}
	}
	if st, err := os.Stat(dbPath + "-shm"); err != nil {
		return nil, err
	} else if w := walHeaders.m[fileID(st)]; w != nil {
		return w, nil
	}
	f, err := os.Open(dbPath + "-shm")
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		walHeaders.kept = append(walHeaders.kept, f)
		return nil, err
	}
	id := fileID(st)
	if w := walHeaders.m[id]; w != nil { // replaced between the two looks
		walHeaders.kept = append(walHeaders.kept, f)
		return w, nil
	}
	if st.Size() < 2*4*walHeaderWords {
		walHeaders.kept = append(walHeaders.kept, f)
		return nil, errors.New("sqlite: the -shm file has no header yet")
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 2*4*walHeaderWords, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		walHeaders.kept = append(walHeaders.kept, f)
		return nil, err
	}
	w := &walHeader{f: f, mem: mem}
	walHeaders.m[id] = w
	return w, nil
}

func fileID(st os.FileInfo) [2]uint64 {
	sys := st.Sys().(*syscall.Stat_t)
	return [2]uint64{uint64(sys.Dev), uint64(sys.Ino)} //nolint:unconvert // the field types differ by platform
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
