-- Sign-in that lasts: a browser keeps a refresh token in an HttpOnly cookie
-- and trades it for a short-lived access token and a new refresh token.
-- Every refresh token descends from one login, whose session is its family:
-- revoking the session ends the family, and a token used twice revokes it.
--
-- token_hash is an HMAC of the token under a key derived from SECRET_KEY,
-- never the token: a copy of the database opens no session, and rotating
-- the secret ends every family. used_at is set when the token is traded,
-- and successor names the token it was traded for: a token traded again
-- moments later while its successor is still unused is another tab of the
-- same browser (a grace), anything else a replay. The row stays so that a
-- replay is recognised, until the session goes.
CREATE TABLE refresh_tokens (
    token_hash VARBINARY(32) NOT NULL PRIMARY KEY,
    session_id BIGINT        NOT NULL,
    created_at BIGINT        NOT NULL,
    used_at    BIGINT        NULL,
    successor  VARBINARY(32) NULL,
    KEY refresh_tokens_session (session_id),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- When a session was last used (a refresh, an access check now and then),
-- for the list of my sessions; NULL until first used after its login.
ALTER TABLE sessions ADD COLUMN last_used_at BIGINT NULL;
