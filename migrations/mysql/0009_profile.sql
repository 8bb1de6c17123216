-- Profiles and usernames in every script.
--
-- username_key is what a username is unique by and looked up by
-- (chat.UsernameKey: PRECIS UsernameCaseMapped plus a few folds), so that
-- "Ａlice" and "alice" cannot both be registered and either logs in. Every
-- name registered so far is ASCII, whose key is plain lower case. The key
-- compares byte for byte (utf8mb4_bin): the folding is the key's, not the
-- collation's. The old unique index on username goes, because
-- utf8mb4_unicode_ci takes "alíce" for "alice" and would refuse names that
-- SQLite accepts; the key's index does the work on both.
ALTER TABLE users
    ADD COLUMN username_key VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    ADD COLUMN display_name VARCHAR(64) NOT NULL DEFAULT '',
    ADD COLUMN avatar_at BIGINT NULL;
UPDATE users SET username_key = LOWER(username);
ALTER TABLE users ADD UNIQUE KEY users_username_key (username_key), DROP INDEX users_username;

-- An avatar is a small square image the server decoded and re-encoded
-- itself; it lives here rather than on disk so that every node serves it.
CREATE TABLE avatars (
    user_id    BIGINT       NOT NULL PRIMARY KEY,
    image      MEDIUMBLOB   NOT NULL,
    mime_type  VARCHAR(32)  NOT NULL,
    updated_at BIGINT       NOT NULL,
    CONSTRAINT avatars_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per chat, which messages notify the member: 'all', 'mentions' (only
-- messages that name them as @username) or 'muted'. It is stored here so
-- that it follows the member from browser to browser.
ALTER TABLE chat_members ADD COLUMN notify VARCHAR(16) NOT NULL DEFAULT 'all';
