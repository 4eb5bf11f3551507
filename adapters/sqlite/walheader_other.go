//go:build !unix

package sqlite

import "errors"

// walHeader is not read on this system: every Get reads its record's
// version (see walheader_unix.go).
type walHeader struct{}

type walStamp [12]uint32

func watchWALHeader(string) (*walHeader, error) {
	return nil, errors.New("sqlite: the WAL index is not watched on this system")
}

func (*walHeader) load() (walStamp, bool) { return walStamp{}, false }
