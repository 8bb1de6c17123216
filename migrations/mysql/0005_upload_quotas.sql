-- A raster image's thumbnail is made in the background after the upload
-- answers; until it is, thumb_pending is 1. The flag lives in the row so
-- that a thumbnail the server did not finish before it stopped is made at
-- the next start. The per-user quota sums one user's files not expired and
-- the janitor walks each uploader's files oldest first (files_uploader_live);
-- the thumbnail worker looks for the rows still waiting (files_thumb_pending).
-- One ALTER, so that MySQL never leaves the table half changed.
ALTER TABLE files
    ADD COLUMN thumb_pending TINYINT NOT NULL DEFAULT 0,
    ADD KEY files_uploader_live (uploader_id, expired_at, created_at),
    ADD KEY files_thumb_pending (thumb_pending, created_at);
