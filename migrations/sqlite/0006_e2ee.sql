-- End-to-end encryption (E2EE.md): public keys, epochs, room-key envelopes
-- and key backups. Public keys and certificates are public and stay
-- readable; envelopes, backup headers and backup items are opaque to the
-- server and sealed at rest with the key ring besides (key_version, body),
-- their additional data binding each to its row.

-- One identity key per account (E2EE.md "Keys").
CREATE TABLE e2ee_identities (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    alg        TEXT    NOT NULL,
    pub        BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

-- A user's devices, certified by their identity key; revoked ones stay so
-- that a device id is never published twice.
CREATE TABLE e2ee_devices (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    dh_alg     TEXT    NOT NULL,
    dh_pub     BLOB    NOT NULL,
    sig_alg    TEXT    NOT NULL,
    sig_pub    BLOB    NOT NULL,
    cert       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (user_id, device_id)
);

-- An encrypted chat's epoch state: the current epoch (0 before the first),
-- the least a message may use, and whether a member joined, left or was
-- removed, or a member's device was added or revoked, since the current
-- epoch began (changed). Counting messages and age live on e2ee_epochs.
CREATE TABLE e2ee_chats (
    chat_id       INTEGER PRIMARY KEY REFERENCES chats(id) ON DELETE CASCADE,
    current_epoch INTEGER NOT NULL DEFAULT 0,
    min_epoch     INTEGER NOT NULL DEFAULT 0,
    changed       INTEGER NOT NULL DEFAULT 0
);

-- One row per epoch started: who started it, when, and how many messages
-- have used it.
CREATE TABLE e2ee_epochs (
    chat_id       INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    epoch         INTEGER NOT NULL,
    sender_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sender_device TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    messages      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, epoch)
);

-- One envelope per (chat, epoch, recipient device), sealed.
CREATE TABLE e2ee_envelopes (
    chat_id          INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    epoch            INTEGER NOT NULL,
    recipient_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recipient_device TEXT    NOT NULL,
    key_version      INTEGER NOT NULL REFERENCES key_versions(id),
    body             BLOB    NOT NULL,
    PRIMARY KEY (chat_id, epoch, recipient_id, recipient_device)
);

-- The key backup: one header per user and one item per room key, sealed.
CREATE TABLE e2ee_backups (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    key_version INTEGER NOT NULL REFERENCES key_versions(id),
    body        BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE e2ee_backup_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    chat_name   TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    key_version INTEGER NOT NULL REFERENCES key_versions(id),
    body        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, chat_name, epoch)
);
CREATE INDEX e2ee_backup_items_user ON e2ee_backup_items(user_id, id);

-- Every encrypted chat has its state row from its creation on.
INSERT INTO e2ee_chats (chat_id) SELECT id FROM chats WHERE e2ee = 1;
