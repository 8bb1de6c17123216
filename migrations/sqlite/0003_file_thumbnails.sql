-- Thumbnails of raster images, sealed beside the file, and the image's size.
ALTER TABLE files ADD COLUMN thumb_name TEXT;
ALTER TABLE files ADD COLUMN thumb_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN thumb_mime_type TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN width INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN height INTEGER NOT NULL DEFAULT 0;
-- The janitor walks files oldest first among those not expired.
CREATE INDEX files_live_created ON files(expired_at, created_at);
