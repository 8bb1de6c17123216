-- Revocations are polled by every running server (and node), so that a
-- logout, a password reset or a disabled account closes the user's
-- WebSockets everywhere within seconds, even when another process (the
-- admin command) made the change.
CREATE INDEX sessions_revoked ON sessions(revoked_at);
CREATE INDEX users_disabled ON users(disabled_at);
