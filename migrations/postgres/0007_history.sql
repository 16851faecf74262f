-- History per portal (postgres dialect; keep in step with migrations/sqlite): the backfill of a
-- new portal and the catch-up after the bridge was away. A portal from before this table has
-- no row: it needs no initial backfill, and catches up from its newest bridged message.
CREATE TABLE backfill (
    team_id      TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    -- 'pending' until a new portal's initial history is bridged, then 'done'.
    initial      TEXT NOT NULL,
    -- The newest message the initial backfill covers, fixed by its first page, so a restart
    -- in the middle fetches the same messages (and sends only those not yet bridged).
    until_ts     TEXT,
    -- The newest ts a backfill or catch-up has seen in Slack's history; the next catch-up
    -- starts after it (or after the newest bridged message, whichever is newer).
    caught_up_ts TEXT,
    -- The current or last run: what it is ('backfill' | 'catch-up'), how far it got.
    run          TEXT NOT NULL DEFAULT '',
    run_done     BIGINT NOT NULL DEFAULT 0,
    run_total    BIGINT NOT NULL DEFAULT 0,
    -- Messages bridged from history, in all.
    bridged      BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (team_id, channel_id)
);
