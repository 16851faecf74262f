-- Files bridged as message parts (SQLite dialect; keep in step with migrations/postgres).

-- The Slack file a message part carries (Slack → Matrix: one Matrix event per file), so a
-- `file_deleted` finds the event to redact; NULL for text parts.
ALTER TABLE messages ADD COLUMN file_id TEXT;
CREATE INDEX messages_file ON messages (team_id, file_id);

-- Matrix → Slack uploads: the Slack file an upload created (recorded before the bytes are
-- sent, so a retry after a lost answer asks files.info instead of uploading again) and who
-- sent it; the ts comes with the echo of the share.
ALTER TABLE outgoing ADD COLUMN slack_file_id TEXT;
ALTER TABLE outgoing ADD COLUMN sender TEXT;
CREATE INDEX outgoing_file ON outgoing (team_id, slack_file_id);
