-- Thumbnails of raster images, sealed beside the file, and the image's size.
-- One ALTER, so that MySQL never leaves the table half changed.
ALTER TABLE files
    ADD COLUMN thumb_name      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN thumb_size      BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN thumb_mime_type VARCHAR(64) NOT NULL DEFAULT '',
    ADD COLUMN width           INT         NOT NULL DEFAULT 0,
    ADD COLUMN height          INT         NOT NULL DEFAULT 0,
    ADD KEY files_live_created (expired_at, created_at);
