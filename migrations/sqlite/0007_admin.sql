-- Administration: deleted accounts, login unlocks and the admin audit trail.
-- (Numbered 0007: 0006 holds the end-to-end encryption tables, which this
-- migration does not touch.)
--
-- A deleted account keeps its row, because its messages and files refer to
-- it; deleted_at marks it, and the API shows it as "deleted user". Its
-- username stays reserved so that nobody can register it and be taken for
-- the person who wrote the old messages.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;

-- An unlock clears a login throttle, which lives in the memory of each
-- running server: the admin command writes a row, and every server polls
-- for new rows (as it polls for revocations) and clears the throttle.
-- username and address are '' when the unlock does not name one.
CREATE TABLE login_unlocks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    username   TEXT    NOT NULL DEFAULT '',
    address    TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX login_unlocks_created ON login_unlocks(created_at);

-- Every admin command that changes something (or reads chats out, as backup
-- and export do): who ran it (the operating-system user), what it did, to
-- what, and when. Never a password, a token or a key.
CREATE TABLE admin_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    command    TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX admin_actions_created ON admin_actions(created_at);
