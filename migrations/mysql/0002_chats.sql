-- Direct chats, groups, replies, edits and deletes.
--
-- messages gains reply_to (the message a reply answers) and target_id (the
-- message an edit or delete event changed), and its kind check must allow the
-- two event kinds. One ALTER TABLE, so that MySQL, which commits DDL
-- statement by statement, never leaves the table half changed.
--
-- reply_to and target_id have no foreign key: the delivery service checks
-- that both name a message of the same chat, and messages are never deleted
-- one by one (a delete empties the body).
ALTER TABLE messages
    DROP CONSTRAINT messages_kind,
    ADD CONSTRAINT messages_kind CHECK (kind IN ('text', 'file', 'system', 'edit', 'delete')),
    ADD COLUMN reply_to  BIGINT NULL,
    ADD COLUMN target_id BIGINT NULL;
