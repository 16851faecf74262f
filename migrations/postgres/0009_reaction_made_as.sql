-- A Matrix user's reaction (postgres dialect; keep in step with migrations/sqlite): the linked Slack
-- account it was made as on Slack, or NULL when it is the bot's reaction (for every Matrix
-- user without a link). Its removal, and the recognition of its Socket Mode echo, follow it.
ALTER TABLE reactions ADD COLUMN made_as TEXT;
