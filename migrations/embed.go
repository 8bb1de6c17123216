// Package migrations embeds the SQL migrations, one folder per dialect. Files
// are named NNNN_name.sql and applied in order.
package migrations

import "embed"

// FS holds sqlite/*.sql and mysql/*.sql.
//
//go:embed sqlite/*.sql mysql/*.sql
var FS embed.FS
