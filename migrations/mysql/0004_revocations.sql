-- Revocations are polled by every running server (and node), so that a
-- logout, a password reset or a disabled account closes the user's
-- WebSockets everywhere within seconds, even when another process (the
-- admin command) made the change.
ALTER TABLE sessions ADD KEY sessions_revoked (revoked_at);
ALTER TABLE users ADD KEY users_disabled (disabled_at);
