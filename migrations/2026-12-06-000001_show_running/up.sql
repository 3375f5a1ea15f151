-- Running a show (issue 24): seats kept back, complimentary tickets, layouts replaced after
-- cancelled reservations, and per-user limits lowered without touching reservations.

-- A BLOCKED seat is kept back by its host: never in a reservation, never sold, counted as
-- booked (it is not available). Blocked seats carry the reason, free ones none.
ALTER TABLE seats
    DROP CONSTRAINT seats_status_check,
    DROP CONSTRAINT seats_check,
    ADD COLUMN block_reason TEXT CHECK (length(block_reason) BETWEEN 1 AND 200);
ALTER TABLE seats
    ADD CONSTRAINT seats_status_check CHECK (status IN ('available', 'held', 'sold', 'blocked')),
    ADD CONSTRAINT seats_check CHECK ((status IN ('available', 'blocked')) = (reservation_id IS NULL)),
    ADD CONSTRAINT seats_blocked_reason_check CHECK ((status = 'blocked') = (block_reason IS NOT NULL));

-- Replacing a layout detaches the old seats (and their grades) that past, dead
-- reservations and their tickets still name, instead of refusing: they keep their rows for
-- history and belong to no schedule any more.
ALTER TABLE seats ALTER COLUMN schedule_id DROP NOT NULL;
ALTER TABLE seat_grades ALTER COLUMN schedule_id DROP NOT NULL;

-- A complimentary reservation is given by the host: price 0, confirmed at once, tickets
-- issued; counted apart in sales and outside the per-user limit.
ALTER TABLE reservations
    ADD COLUMN complimentary BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN note TEXT CHECK (length(note) <= 500),
    ADD CONSTRAINT reservations_complimentary_check CHECK (NOT complimentary OR (total_price = 0 AND status <> 'held'));

-- When the per-user limit was last lowered: holdings made before it may exceed the new
-- limit (a lower limit does not touch existing reservations), and I4 knows that.
ALTER TABLE schedules ADD COLUMN limit_lowered_at TIMESTAMPTZ;
