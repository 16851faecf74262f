-- Edits and deletes of bridged messages (PostgreSQL dialect; keep in step with migrations/sqlite).

-- The newest Slack edit (`edited.ts`) bridged to Matrix: a redelivered or older edit is not
-- sent again.
ALTER TABLE messages ADD COLUMN edit_ts TEXT;
-- 1 once the message is deleted on either side (its Matrix events redacted, or a Matrix
-- redaction on its way to Slack): the echo and redeliveries redact nothing, and thread
-- replies still find their root.
ALTER TABLE messages ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_thread ON messages (team_id, channel_id, thread_ts, ts);
