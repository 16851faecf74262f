-- Edits and deletes of bridged messages (PostgreSQL dialect; keep in step with migrations/sqlite).

-- The newest Slack edit (`edited.ts`) bridged to Matrix: a redelivered or older edit is not
-- sent again.
ALTER TABLE messages ADD COLUMN edit_ts TEXT;
-- 1 once the message is deleted on either side (its Matrix events redacted, or a Matrix
-- redaction on its way to Slack): the echo and redeliveries redact nothing, and thread
-- replies still find their root.
ALTER TABLE messages ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_thread ON messages (team_id, channel_id, thread_ts, ts);

-- Portals whose Slack members have all been given a ghost in the room (1), or not yet (0:
-- new, or from before member sync existed); the member sync resumes these after a restart.
ALTER TABLE portals ADD COLUMN members_synced BIGINT NOT NULL DEFAULT 0;
-- 'active' | 'archived' (read-only until unarchived) | 'deleted' (the channel is gone).
ALTER TABLE portals ADD COLUMN state TEXT NOT NULL DEFAULT 'active';

-- A workspace's custom emoji uploaded to Matrix: once per image (a changed image, a new
-- upload), looked up by name for Slack reactions and by mxc for Matrix ones.
CREATE TABLE custom_emoji (
    team_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    source  TEXT NOT NULL,
    mxc     TEXT NOT NULL,
    PRIMARY KEY (team_id, name)
);
CREATE INDEX custom_emoji_mxc ON custom_emoji (team_id, mxc);
