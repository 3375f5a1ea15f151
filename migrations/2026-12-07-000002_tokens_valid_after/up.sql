-- A lock ends every session for good: access tokens issued before the account's last lock
-- or unlock stay refused after the unlock (their `iat` is compared with this time by every
-- instance, in memory, next to the set of locked accounts). Only the recent ones matter (an
-- older time is before every unexpired token), so the partial index stays small to read.
ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMPTZ;
CREATE INDEX users_tokens_valid_after ON users (tokens_valid_after) WHERE tokens_valid_after IS NOT NULL;
