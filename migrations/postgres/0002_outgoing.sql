-- Matrix → Slack sends, recorded before the Slack call so a retry or the Socket Mode echo is
-- recognised (PostgreSQL dialect; keep in step with migrations/sqlite).
CREATE TABLE outgoing (
    event_id   TEXT PRIMARY KEY NOT NULL,
    room_id    TEXT NOT NULL,
    team_id    TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    -- 'pending' | 'sent' | 'failed'
    state      TEXT NOT NULL DEFAULT 'pending',
    slack_ts   TEXT,
    error      TEXT,
    created_at BIGINT NOT NULL
);
