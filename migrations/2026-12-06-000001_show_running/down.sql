ALTER TABLE schedules DROP COLUMN limit_lowered_at;
ALTER TABLE reservations
    DROP CONSTRAINT reservations_complimentary_check,
    DROP COLUMN note,
    DROP COLUMN complimentary;
DELETE FROM seats WHERE schedule_id IS NULL;
DELETE FROM seat_grades WHERE schedule_id IS NULL;
ALTER TABLE seat_grades ALTER COLUMN schedule_id SET NOT NULL;
ALTER TABLE seats ALTER COLUMN schedule_id SET NOT NULL;
UPDATE seats SET status = 'available', block_reason = NULL WHERE status = 'blocked';
ALTER TABLE seats
    DROP CONSTRAINT seats_blocked_reason_check,
    DROP CONSTRAINT seats_check,
    DROP CONSTRAINT seats_status_check,
    DROP COLUMN block_reason;
ALTER TABLE seats
    ADD CONSTRAINT seats_status_check CHECK (status IN ('available', 'held', 'sold')),
    ADD CONSTRAINT seats_check CHECK ((status = 'available') = (reservation_id IS NULL));
