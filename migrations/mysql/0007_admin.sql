-- Administration: deleted accounts, login unlocks and the admin audit trail.
-- (Numbered 0007: 0006 holds the end-to-end encryption tables, which this
-- migration does not touch.)
--
-- A deleted account keeps its row, because its messages and files refer to
-- it; deleted_at marks it, and the API shows it as "deleted user". Its
-- username stays reserved so that nobody can register it and be taken for
-- the person who wrote the old messages.
ALTER TABLE users ADD COLUMN deleted_at BIGINT NULL;

-- An unlock clears a login throttle, which lives in the memory of each
-- running server: the admin command writes a row, and every server polls
-- for new rows (as it polls for revocations) and clears the throttle.
-- username and address are '' when the unlock does not name one.
CREATE TABLE login_unlocks (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username   VARCHAR(255) NOT NULL DEFAULT '',
    address    VARCHAR(64)  NOT NULL DEFAULT '',
    created_at BIGINT       NOT NULL,
    KEY login_unlocks_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every admin command that changes something (or reads chats out, as backup
-- and export do): who ran it (the operating-system user), what it did, to
-- what, and when. Never a password, a token or a key.
CREATE TABLE admin_actions (
    id         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at BIGINT        NOT NULL,
    actor      VARCHAR(255)  NOT NULL,
    command    VARCHAR(64)   NOT NULL,
    target     VARCHAR(255)  NOT NULL DEFAULT '',
    detail     VARCHAR(1024) NOT NULL DEFAULT '',
    KEY admin_actions_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
