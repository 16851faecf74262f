-- Slack user logins (postgres dialect; keep in step with migrations/sqlite): a Matrix user who
-- linked their own Slack account with `login-user`, so what they write in Matrix reaches Slack
-- as them rather than through the relay. One Slack account links to one Matrix user.
CREATE TABLE user_logins (
    mxid          TEXT NOT NULL,
    team_id       TEXT NOT NULL,
    slack_user_id TEXT NOT NULL,
    -- The user token (xoxp-…), sealed with the database's key like the bot tokens.
    token         TEXT NOT NULL,
    -- The scopes Slack granted, comma-separated.
    scopes        TEXT NOT NULL,
    -- 'ok', or 'invalid' once Slack revoked the token (the user links again).
    state         TEXT NOT NULL DEFAULT 'ok',
    state_reason  TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (mxid, team_id),
    UNIQUE (team_id, slack_user_id)
);
