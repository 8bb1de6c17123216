-- End-to-end encryption (E2EE.md): public keys, epochs, room-key envelopes
-- and key backups. Public keys and certificates are public and stay
-- readable; envelopes, backup headers and backup items are opaque to the
-- server and sealed at rest with the key ring besides (key_version, body),
-- their additional data binding each to its row. See the SQLite migration
-- for what each table holds.
CREATE TABLE e2ee_identities (
    user_id    BIGINT        NOT NULL PRIMARY KEY,
    alg        VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    pub        VARBINARY(65) NOT NULL,
    created_at BIGINT        NOT NULL,
    CONSTRAINT e2ee_identities_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_devices (
    user_id    BIGINT        NOT NULL,
    device_id  VARCHAR(22)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name       VARCHAR(64)   NOT NULL DEFAULT '',
    dh_alg     VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    dh_pub     VARBINARY(65) NOT NULL,
    sig_alg    VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    sig_pub    VARBINARY(65) NOT NULL,
    cert       VARBINARY(64) NOT NULL,
    created_at BIGINT        NOT NULL,
    revoked_at BIGINT        NULL,
    PRIMARY KEY (user_id, device_id),
    CONSTRAINT e2ee_devices_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_chats (
    chat_id       BIGINT     NOT NULL PRIMARY KEY,
    current_epoch BIGINT     NOT NULL DEFAULT 0,
    min_epoch     BIGINT     NOT NULL DEFAULT 0,
    changed       TINYINT(1) NOT NULL DEFAULT 0,
    CONSTRAINT e2ee_chats_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_epochs (
    chat_id       BIGINT      NOT NULL,
    epoch         BIGINT      NOT NULL,
    sender_id     BIGINT      NOT NULL,
    sender_device VARCHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    started_at    BIGINT      NOT NULL,
    messages      BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, epoch),
    CONSTRAINT e2ee_epochs_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE,
    CONSTRAINT e2ee_epochs_sender_fk FOREIGN KEY (sender_id) REFERENCES users(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_envelopes (
    chat_id          BIGINT         NOT NULL,
    epoch            BIGINT         NOT NULL,
    recipient_id     BIGINT         NOT NULL,
    recipient_device VARCHAR(22)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    key_version      BIGINT         NOT NULL,
    body             VARBINARY(1024) NOT NULL,
    PRIMARY KEY (chat_id, epoch, recipient_id, recipient_device),
    KEY e2ee_envelopes_recipient (recipient_id),
    CONSTRAINT e2ee_envelopes_chat_fk FOREIGN KEY (chat_id) REFERENCES chats(id) ON DELETE CASCADE,
    CONSTRAINT e2ee_envelopes_user_fk FOREIGN KEY (recipient_id) REFERENCES users(id) ON DELETE CASCADE,
    CONSTRAINT e2ee_envelopes_key_fk FOREIGN KEY (key_version) REFERENCES key_versions(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_backups (
    user_id     BIGINT    NOT NULL PRIMARY KEY,
    key_version BIGINT    NOT NULL,
    body        BLOB      NOT NULL,
    updated_at  BIGINT    NOT NULL,
    CONSTRAINT e2ee_backups_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE,
    CONSTRAINT e2ee_backups_key_fk FOREIGN KEY (key_version) REFERENCES key_versions(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE e2ee_backup_items (
    id          BIGINT         NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id     BIGINT         NOT NULL,
    chat_name   VARCHAR(64)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    epoch       BIGINT         NOT NULL,
    key_version BIGINT         NOT NULL,
    body        VARBINARY(512) NOT NULL,
    created_at  BIGINT         NOT NULL,
    UNIQUE KEY e2ee_backup_items_key (user_id, chat_name, epoch),
    KEY e2ee_backup_items_user (user_id, id),
    CONSTRAINT e2ee_backup_items_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE,
    CONSTRAINT e2ee_backup_items_key_fk FOREIGN KEY (key_version) REFERENCES key_versions(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO e2ee_chats (chat_id) SELECT id FROM chats WHERE e2ee = 1;
