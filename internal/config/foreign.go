package config

import (
	"os"
	"strings"
)

// foreignSetting is a group of names the server does not read but that look
// like its own: settings of the project Mapsim Chat grew from (SecureChat:
// DATABASE_URL, DB_FILE), of web frameworks (JWT_SECRET, DB_PASSWORD) and of
// hosting platforms (PORT). Set, such a name would be ignored without a word
// and the server would start on defaults nobody chose: on SQLite instead of
// the database DATABASE_URL names, with a generated key instead of
// JWT_SECRET, on :8000 instead of PORT. Load refuses them, saying what to set
// instead.
//
// A foreign name is let through when one of the settings it stands for
// (ours) is set as well: the operator has then chosen, and a platform that
// always sets PORT or DATABASE_URL, or a shell that exports HOST, does not
// stop a server that is configured.
type foreignSetting struct {
	names  []string
	ours   []string
	advice string
}

var foreignSettings = []foreignSetting{
	{
		names: []string{"DATABASE_URL", "DB_URL", "DB_DSN", "MYSQL_URL", "MYSQL_DSN", "MARIADB_URL"},
		ours:  []string{"DB_HOST", "DB_DRIVER"},
		advice: "Mapsim Chat reads no database URL: for MySQL/MariaDB set DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASS " +
			"(or DB_DRIVER=sqlite for the embedded SQLite)",
	},
	{
		names:  []string{"DB_FILE", "DB_PATH", "SQLITE_PATH", "DATABASE_PATH"},
		ours:   []string{"DATA_DIR"},
		advice: "the SQLite database is DATA_DIR/chat.db: set DATA_DIR to the folder that holds it",
	},
	{names: []string{"DB_PASSWORD"}, ours: []string{"DB_PASS"}, advice: "set DB_PASS instead"},
	{names: []string{"DB_USERNAME"}, ours: []string{"DB_USER"}, advice: "set DB_USER instead"},
	{names: []string{"DB_DATABASE"}, ours: []string{"DB_NAME"}, advice: "set DB_NAME instead"},
	{
		names: []string{"JWT_SECRET", "JWT_SECRET_KEY", "SECRET", "APP_SECRET", "SESSION_SECRET"},
		ours:  []string{"SECRET_KEY"},
		advice: "the key that seals messages and signs tokens is SECRET_KEY: set it (openssl rand -base64 32), " +
			"or leave it unset and the server keeps a generated one in DATA_DIR/secret.key",
	},
	{
		names:  []string{"PORT", "HOST", "BIND", "BIND_ADDR", "HTTP_PORT", "LISTEN_PORT"},
		ours:   []string{"LISTEN_ADDR"},
		advice: "the address to listen on is LISTEN_ADDR, host and port together: set LISTEN_ADDR=127.0.0.1:8000 (or LISTEN_ADDR=:$PORT)",
	},
	{
		names:  []string{"UPLOAD_FOLDER", "UPLOADS_DIR", "UPLOAD_PATH", "MEDIA_ROOT"},
		ours:   []string{"UPLOAD_DIR"},
		advice: "set UPLOAD_DIR instead",
	},
	{
		names:  []string{"UPLOAD_MAX_SIZE", "UPLOAD_MAX_FILE_SIZE", "MAX_UPLOAD_SIZE", "MAX_CONTENT_LENGTH"},
		ours:   []string{"UPLOAD_MAX_FILE_MB", "UPLOAD_MAX_SIZE_GB"},
		advice: "set UPLOAD_MAX_FILE_MB (the largest upload, in MB) and UPLOAD_MAX_SIZE_GB (all uploads together, in GB) instead",
	},
	{
		names:  []string{"CORS_ORIGINS", "CORS_ALLOWED_ORIGINS"},
		ours:   []string{"ALLOWED_ORIGINS", "PUBLIC_URL"},
		advice: "set PUBLIC_URL to the address users reach the server at, and ALLOWED_ORIGINS to other origins whose pages may open WebSockets",
	},
	{names: []string{"LOG_LEVEL"}, ours: []string{"DEBUG"}, advice: "set DEBUG=true for debug logs (and LOG_FORMAT=json for JSON lines)"},
}

// refuseForeign fails every foreign setting that is set while none of the
// settings it stands for is. The value is never shown: DATABASE_URL and
// JWT_SECRET hold secrets.
func (l *loader) refuseForeign() {
	for _, f := range foreignSettings {
		if l.anySet(f.ours) {
			continue
		}
		for _, name := range f.names {
			v := strings.TrimSpace(l.getenv(name))
			if v == "" || (name == "HOST" && isHostname(v)) {
				continue
			}
			l.fail(name, "is not a Mapsim Chat setting, so it would be ignored; %s (once that is set, %s is ignored)", f.advice, name)
		}
	}
}

func (l *loader) anySet(names []string) bool {
	for _, n := range names {
		if strings.TrimSpace(l.getenv(n)) != "" {
			return true
		}
	}
	return false
}

// isHostname reports whether v is this machine's name, which tcsh and some
// login shells export as HOST: that HOST is not a setting.
func isHostname(v string) bool {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return false
	}
	short, _, _ := strings.Cut(name, ".")
	return strings.EqualFold(v, name) || strings.EqualFold(v, short)
}
