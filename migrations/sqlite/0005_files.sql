-- Files bridged as message parts (SQLite dialect; keep in step with migrations/postgres).

-- The Slack file a message part carries (Slack → Matrix: one Matrix event per file), so a
-- `file_deleted` finds the event to redact; NULL for text parts.
ALTER TABLE messages ADD COLUMN file_id TEXT;
CREATE INDEX messages_file ON messages (team_id, file_id);
