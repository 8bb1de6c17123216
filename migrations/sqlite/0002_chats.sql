-- Direct chats, groups, replies, edits and deletes.
--
-- messages gains reply_to (the message a reply answers) and target_id (the
-- message an edit or delete event changed), and its kind check must allow the
-- two event kinds. SQLite cannot alter a CHECK constraint, so the table is
-- rebuilt: create the new shape, copy every row with its id, drop the old
-- table, rename, recreate the index. The migration runs in one transaction.
--
-- foreign_keys is on and cannot be switched off inside a transaction; that is
-- safe here because no table refers to messages, so dropping it breaks no
-- reference. reply_to and target_id have no REFERENCES clause for the same
-- reason: the delivery service checks that both name a message of the same
-- chat, and messages are never deleted one by one (a delete empties the body).
CREATE TABLE messages_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('text', 'file', 'system', 'edit', 'delete')),
    key_version INTEGER NOT NULL REFERENCES key_versions(id),
    body        BLOB    NOT NULL,
    client_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    edited_at   INTEGER,
    deleted_at  INTEGER,
    reply_to    INTEGER,
    target_id   INTEGER,
    UNIQUE (user_id, client_id)
);

INSERT INTO messages_new (id, chat_id, user_id, kind, key_version, body, client_id, created_at, edited_at, deleted_at)
SELECT id, chat_id, user_id, kind, key_version, body, client_id, created_at, edited_at, deleted_at FROM messages;

-- AUTOINCREMENT promises that an id is never handed out twice. Copying rows
-- moves the new table's counter only up to the largest id copied; carry over
-- the old counter, which is higher when the newest rows were deleted (a
-- deleted chat takes its messages with it).
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM sqlite_sequence WHERE name IN ('messages', 'messages_new'))
WHERE name = 'messages_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'messages_new', seq FROM sqlite_sequence
WHERE name = 'messages' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages_new');

DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_chat_id ON messages(chat_id, id);
