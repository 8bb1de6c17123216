package store

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/migrations"
)

// migration is one embedded SQL file.
type migration struct {
	version    int
	name       string
	statements []string
}

// loadMigrations reads the embedded migrations of a dialect, in order.
func loadMigrations(dialect string) ([]migration, error) {
	entries, err := fs.ReadDir(migrations.FS, dialect)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", name)
		}
		text, err := fs.ReadFile(migrations.FS, path.Join(dialect, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: name, statements: splitStatements(string(text))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

// splitStatements splits a migration into statements: each ends with a
// semicolon at the end of a line. Lines starting with "--" are comments.
func splitStatements(text string) []string {
	var (
		out []string
		cur strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// SchemaVersion returns the newest applied migration, 0 for an empty database.
func (s *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), s.fail("schema version", err)
}

// migrate applies the pending migrations in order, up to version upTo
// (0: all). On MySQL a named lock keeps two nodes starting together from
// applying the same migration twice.
func (s *DB) migrate(ctx context.Context, upTo int) error {
	all, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("take a connection: %w", err)
	}
	defer conn.Close()
	if s.dialect == MySQL {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('mapsim_chat_migrate', 60)`).Scan(&got); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if got.Int64 != 1 {
			return fmt.Errorf("another node held the migration lock for 60 s; try again")
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT RELEASE_LOCK('mapsim_chat_migrate')`)
	}
	create := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`
	if s.dialect == MySQL {
		create = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL
		) ENGINE=InnoDB`
	}
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, newest, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	known := 0
	if len(all) > 0 {
		known = all[len(all)-1].version
	}
	if newest > known {
		return fmt.Errorf("the database schema is at version %d but this mapsim-chat knows only up to %d: run a newer mapsim-chat (refusing to start so that nothing is damaged)", newest, known)
	}
	// Every migration not yet recorded runs, not only those above the
	// newest: migrations written side by side on branches (0006 and 0007)
	// may reach a database in either order, and each stands alone.
	for _, m := range all {
		if applied[m.version] {
			continue
		}
		if upTo > 0 && m.version > upTo {
			break
		}
		if err := s.apply(ctx, conn, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// appliedVersions reads the versions recorded in schema_migrations, and the
// newest of them.
func appliedVersions(ctx context.Context, conn *sql.Conn) (map[int]bool, int, error) {
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, 0, fmt.Errorf("read schema versions: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	newest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, 0, fmt.Errorf("read schema versions: %w", err)
		}
		applied[v] = true
		newest = max(newest, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read schema versions: %w", err)
	}
	return applied, newest, nil
}

// apply runs one migration. SQLite runs it in a transaction; MySQL commits
// DDL implicitly, so there each statement stands alone and the version row
// is written last.
func (s *DB) apply(ctx context.Context, conn *sql.Conn, m migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range m.statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%w\nin statement: %.200s", err, stmt)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}
