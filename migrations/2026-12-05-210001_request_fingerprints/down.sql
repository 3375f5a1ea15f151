ALTER TABLE reservations DROP COLUMN request_hash;
