DROP INDEX users_locked;
ALTER TABLE users DROP CONSTRAINT users_lock_has_reason, DROP COLUMN locked_reason, DROP COLUMN locked_at;
