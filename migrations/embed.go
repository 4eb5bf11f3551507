// Package migrations holds the database schema as goose SQL files, embedded
// in the binary so that `serve` and `migrate` need nothing beside it.
package migrations

import "embed"

// FS is the embedded goose migrations, named NNNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS
