-- An admin can lock an account (lockAccount): it cannot log in or refresh, and its access
-- tokens are refused on every instance. Every instance reads the locked ids at start and
-- every few seconds, so the partial index stays as small as the set.
ALTER TABLE users
    ADD COLUMN locked_at TIMESTAMPTZ,
    ADD COLUMN locked_reason TEXT CHECK (length(locked_reason) BETWEEN 1 AND 500),
    ADD CONSTRAINT users_lock_has_reason CHECK ((locked_at IS NULL) = (locked_reason IS NULL));
CREATE INDEX users_locked ON users (id) WHERE locked_at IS NOT NULL;
