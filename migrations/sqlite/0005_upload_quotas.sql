-- A raster image's thumbnail is made in the background after the upload
-- answers; until it is, thumb_pending is 1. The flag lives in the row so
-- that a thumbnail the server did not finish before it stopped is made at
-- the next start.
ALTER TABLE files ADD COLUMN thumb_pending INTEGER NOT NULL DEFAULT 0;
-- The per-user quota sums one user's files not expired, and the janitor
-- walks each uploader's files oldest first.
CREATE INDEX files_uploader_live ON files(uploader_id, expired_at, created_at);
-- The thumbnail worker looks for the rows still waiting.
CREATE INDEX files_thumb_pending ON files(thumb_pending, created_at);
