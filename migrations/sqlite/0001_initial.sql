-- Initial schema for the portal layer (SQLite dialect; keep in step with migrations/postgres).

-- One Slack app installed in a workspace, owned by a Matrix user.
CREATE TABLE logins (
    team_id       TEXT PRIMARY KEY NOT NULL,
    team_name     TEXT NOT NULL DEFAULT '',
    bot_user_id   TEXT NOT NULL,
    bot_id        TEXT NOT NULL,
    app_id        TEXT NOT NULL,
    owner_mxid    TEXT NOT NULL,
    bot_token     TEXT NOT NULL,
    app_token     TEXT NOT NULL,
    -- 'ok' | 'invalid' (credentials dead: token revoked, app uninstalled) | 'logged_out'
    state         TEXT NOT NULL DEFAULT 'ok',
    state_reason  TEXT,
    space_room_id TEXT UNIQUE,
    created_at    INTEGER NOT NULL
);

-- A Slack conversation and its Matrix room.
CREATE TABLE portals (
    team_id    TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    -- 'channel' | 'private' | 'im' | 'mpim'
    kind       TEXT NOT NULL,
    room_id    TEXT UNIQUE,
    name       TEXT NOT NULL DEFAULT '',
    topic      TEXT NOT NULL DEFAULT '',
    -- for 'im': the Slack user on the other side
    dm_user_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, channel_id)
);

-- A Slack user or bot and its Matrix ghost.
CREATE TABLE ghosts (
    team_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    mxid          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    avatar_source TEXT NOT NULL DEFAULT '',
    avatar_mxc    TEXT NOT NULL DEFAULT '',
    is_bot        INTEGER NOT NULL DEFAULT 0,
    registered    INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

-- A Slack message (one part per Matrix event it became) and its Matrix event.
CREATE TABLE messages (
    team_id    TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    ts         TEXT NOT NULL,
    part       INTEGER NOT NULL DEFAULT 0,
    event_id   TEXT NOT NULL UNIQUE,
    room_id    TEXT NOT NULL,
    thread_ts  TEXT,
    sender     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, channel_id, ts, part)
);

CREATE TABLE reactions (
    team_id    TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    msg_ts     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    room_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, channel_id, msg_ts, user_id, emoji)
);

-- The DM between a Matrix user and the bridge bot where bot commands are read.
CREATE TABLE management_rooms (
    mxid    TEXT PRIMARY KEY NOT NULL,
    room_id TEXT NOT NULL UNIQUE
);

-- Slack events, stored before their envelope is acked; deduplicated on event_id.
CREATE TABLE slack_inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    team_id     TEXT NOT NULL,
    channel_id  TEXT,
    payload     TEXT NOT NULL,
    -- 'pending' | 'done' | 'failed'
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    received_at INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX slack_inbox_pending ON slack_inbox (state, id);

-- Homeserver transactions, stored before they are answered; deduplicated on txn_id.
CREATE TABLE hs_inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id      TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    received_at INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX hs_inbox_pending ON hs_inbox (state, id);
