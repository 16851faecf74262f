-- Queues per portal in both directions (PostgreSQL dialect; keep in step with migrations/sqlite).

-- Slack events: the queue (portal) each belongs to, so workers read one portal's events in
-- bounded windows, and when the first attempt was made, so retrying ends after
-- bridge.outbound.retry_for.
ALTER TABLE slack_inbox ADD COLUMN queue TEXT NOT NULL DEFAULT '';
ALTER TABLE slack_inbox ADD COLUMN first_attempt_at BIGINT;
UPDATE slack_inbox SET queue = team_id || ':' || COALESCE(channel_id, '-');
CREATE INDEX slack_inbox_queue ON slack_inbox (state, queue, id);

-- Matrix events on their way to Slack, one row per event, taken from a homeserver transaction
-- and kept in the queue of their portal room (or the command queue) until handled.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    room_id          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    -- 'pending' | 'running' (a command that started; never run twice) | 'done' | 'failed'
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    first_attempt_at BIGINT,
    received_at      BIGINT NOT NULL,
    done_at          BIGINT
);
CREATE INDEX outbox_queue ON outbox (state, queue, id);
