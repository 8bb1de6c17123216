-- Profiles and usernames in every script.
--
-- username_key is what a username is unique by and looked up by
-- (chat.UsernameKey: PRECIS UsernameCaseMapped plus a few folds), so that
-- "Ａlice" and "alice" cannot both be registered and either logs in. Every
-- name registered so far is ASCII, whose key is plain lower case.
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = LOWER(username);
CREATE UNIQUE INDEX users_username_key ON users(username_key);

-- display_name is shown instead of the username where people appear; ''
-- means none. avatar_at is when the current avatar was set (its version in
-- URLs), NULL when there is none.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_at INTEGER;

-- An avatar is a small square image the server decoded and re-encoded
-- itself; it lives here rather than on disk so that every node serves it.
CREATE TABLE avatars (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    image      BLOB    NOT NULL,
    mime_type  TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Per chat, which messages notify the member: 'all', 'mentions' (only
-- messages that name them as @username) or 'muted'. It is stored here so
-- that it follows the member from browser to browser.
ALTER TABLE chat_members ADD COLUMN notify TEXT NOT NULL DEFAULT 'all' CHECK (notify IN ('all', 'mentions', 'muted'));
