ALTER TABLE seats RESET (fillfactor);
CREATE INDEX seats_reservation ON seats (reservation_id) WHERE reservation_id IS NOT NULL;
