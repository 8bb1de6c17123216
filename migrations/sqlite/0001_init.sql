-- Mapsim Chat schema, SQLite dialect. Times are Unix milliseconds (UTC).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    email         TEXT    COLLATE NOCASE UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'member',
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    user_agent TEXT    NOT NULL DEFAULT '',
    ip         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE invites (
    code_hash  BLOB    PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    used_by    INTEGER REFERENCES users(id) ON DELETE SET NULL
);

CREATE TABLE key_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    wrapped_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE chats (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('global', 'direct', 'group')),
    title      TEXT    NOT NULL DEFAULT '',
    e2ee       INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE chat_members (
    chat_id      INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         TEXT    NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    joined_at    INTEGER NOT NULL,
    last_read_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members(user_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('text', 'file', 'system')),
    key_version INTEGER NOT NULL REFERENCES key_versions(id),
    body        BLOB    NOT NULL,
    client_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    edited_at   INTEGER,
    deleted_at  INTEGER,
    UNIQUE (user_id, client_id)
);
CREATE INDEX messages_chat_id ON messages(chat_id, id);

CREATE TABLE files (
    id            BLOB    PRIMARY KEY,
    chat_id       INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    uploader_id   INTEGER NOT NULL REFERENCES users(id),
    original_name TEXT    NOT NULL,
    mime_type     TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    sha256        BLOB    NOT NULL,
    key_version   INTEGER NOT NULL REFERENCES key_versions(id),
    storage_name  TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expired_at    INTEGER
);
CREATE INDEX files_chat ON files(chat_id);
CREATE INDEX files_created ON files(created_at);

INSERT INTO chats (name, kind, title, e2ee, created_by, created_at)
VALUES ('global', 'global', 'Global', 0, NULL, CAST(strftime('%s', 'now') AS INTEGER) * 1000);
