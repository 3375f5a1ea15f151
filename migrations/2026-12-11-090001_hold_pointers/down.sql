DROP TRIGGER schedules_named ON schedules;
DROP TRIGGER seats_named ON seats;
DROP TRIGGER reservations_named ON reservations;
DROP FUNCTION refuse_deleting_named();
ALTER TABLE reservations
    ADD CONSTRAINT reservations_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES schedules (id);
ALTER TABLE seats
    ADD CONSTRAINT seats_reservation_fk FOREIGN KEY (reservation_id) REFERENCES reservations (id);
ALTER TABLE reservation_seats
    ADD CONSTRAINT reservation_seats_reservation_id_fkey FOREIGN KEY (reservation_id) REFERENCES reservations (id),
    ADD CONSTRAINT reservation_seats_seat_id_fkey FOREIGN KEY (seat_id) REFERENCES seats (id);
