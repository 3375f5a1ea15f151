-- Claiming, selling and releasing a seat change only `status` and `reservation_id`. With no
-- index on either, PostgreSQL updates the row in place on its page (a HOT update) instead of
-- adding a tuple to every index of `seats`: four index insertions fewer per seat in every
-- booking batch. Seats of a reservation are found through `reservation_seats` instead.
-- Pages keep room for the new row versions (fillfactor; it applies to seats inserted from
-- now on, so to layouts built after this migration).
DROP INDEX seats_reservation;
ALTER TABLE seats SET (fillfactor = 70);
