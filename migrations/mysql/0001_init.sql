-- Mapsim Chat schema, MySQL/MariaDB dialect. Times are Unix milliseconds (UTC).
CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(32)  NOT NULL,
    email         VARCHAR(254) NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL DEFAULT 'member',
    created_at    BIGINT       NOT NULL,
    disabled_at   BIGINT       NULL,
    UNIQUE KEY users_username (username),
    UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sessions (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id    BIGINT       NOT NULL,
    token_hash VARBINARY(32) NOT NULL,
    created_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    revoked_at BIGINT       NULL,
    user_agent VARCHAR(255) NOT NULL DEFAULT '',
    ip         VARCHAR(64)  NOT NULL DEFAULT '',
    UNIQUE KEY sessions_token (token_hash),
    KEY sessions_user (user_id),
    KEY sessions_expires (expires_at),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE invites (
    code_hash  VARBINARY(32) NOT NULL PRIMARY KEY,
    created_at BIGINT        NOT NULL,
    expires_at BIGINT        NOT NULL,
    used_at    BIGINT        NULL,
    used_by    BIGINT        NULL,
    CONSTRAINT invites_user_fk FOREIGN KEY (used_by) REFERENCES users(id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE key_versions (
    id          BIGINT         NOT NULL AUTO_INCREMENT PRIMARY KEY,
    wrapped_key VARBINARY(255) NOT NULL,
    created_at  BIGINT         NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE chats (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kind       VARCHAR(16)  NOT NULL,
    title      VARCHAR(255) NOT NULL DEFAULT '',
    e2ee       TINYINT(1)   NOT NULL DEFAULT 0,
    created_by BIGINT       NULL,
    created_at BIGINT       NOT NULL,
    UNIQUE KEY chats_name (name),
    CONSTRAINT chats_kind CHECK (kind IN ('global', 'direct', 'group')),
    CONSTRAINT chats_creator_fk FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE chat_members (
    chat_id      BIGINT      NOT NULL,
    user_id      BIGINT      NOT NULL,
    role         VARCHAR(16) NOT NULL DEFAULT 'member',
    joined_at    BIGINT      NOT NULL,
    last_read_id BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id),
    KEY chat_members_user (user_id),
    CONSTRAINT chat_members_role CHECK (role IN ('owner', 'member')),
    CONSTRAINT chat_members_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE,
    CONSTRAINT chat_members_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE messages (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chat_id     BIGINT        NOT NULL,
    user_id     BIGINT        NOT NULL,
    kind        VARCHAR(16)   NOT NULL,
    key_version BIGINT        NOT NULL,
    body        MEDIUMBLOB    NOT NULL,
    client_id   VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at  BIGINT        NOT NULL,
    edited_at   BIGINT        NULL,
    deleted_at  BIGINT        NULL,
    UNIQUE KEY messages_client (user_id, client_id),
    KEY messages_chat_id (chat_id, id),
    CONSTRAINT messages_kind CHECK (kind IN ('text', 'file', 'system')),
    CONSTRAINT messages_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE,
    CONSTRAINT messages_user_fk FOREIGN KEY (user_id) REFERENCES users(id),
    CONSTRAINT messages_key_fk FOREIGN KEY (key_version) REFERENCES key_versions(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE files (
    id            BINARY(16)    NOT NULL PRIMARY KEY,
    chat_id       BIGINT        NOT NULL,
    uploader_id   BIGINT        NOT NULL,
    original_name VARCHAR(255)  NOT NULL,
    mime_type     VARCHAR(255)  NOT NULL,
    size          BIGINT        NOT NULL,
    sha256        BINARY(32)    NOT NULL,
    key_version   BIGINT        NOT NULL,
    storage_name  VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at    BIGINT        NOT NULL,
    expired_at    BIGINT        NULL,
    UNIQUE KEY files_storage (storage_name),
    KEY files_chat (chat_id),
    KEY files_created (created_at),
    CONSTRAINT files_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE,
    CONSTRAINT files_user_fk FOREIGN KEY (uploader_id) REFERENCES users(id),
    CONSTRAINT files_key_fk FOREIGN KEY (key_version) REFERENCES key_versions(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO chats (name, kind, title, e2ee, created_by, created_at)
VALUES ('global', 'global', 'Global', 0, NULL, UNIX_TIMESTAMP() * 1000);
