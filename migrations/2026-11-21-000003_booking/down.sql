DROP TRIGGER point_ledger_append_only ON point_ledger;
DROP FUNCTION point_ledger_append_only();
DROP TABLE point_ledger;
ALTER TABLE seats DROP CONSTRAINT seats_reservation_fk;
DROP TABLE reservation_seats;
DROP TABLE reservations;
