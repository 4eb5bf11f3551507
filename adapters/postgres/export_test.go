package postgres

import "time"

// SetListenKeepalive shortens how long Listen lets its connection be quiet
// before checking it, so a test need not wait for the default.
func (db *DB) SetListenKeepalive(d time.Duration) { db.listenKeepalive = d }
