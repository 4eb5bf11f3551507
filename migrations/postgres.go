package migrations

import "embed"

// PostgresFS is the PostgreSQL schema as goose SQL files, under postgres/.
// It is numbered on its own: the two databases reach the same schema by
// different steps, and neither's history constrains the other's.
//
//go:embed postgres/*.sql
var PostgresFS embed.FS
