-- What a hold was asked with (operation, schedule and seats or best-available ask), hashed:
-- a repeated idempotency key replays the reservation only for the same request, and any
-- other request with the key is a CONFLICT. Null for holds made before this column (they
-- are compared by seats and grade, as before) and for holds made without a key.
ALTER TABLE reservations ADD COLUMN request_hash BIGINT;
