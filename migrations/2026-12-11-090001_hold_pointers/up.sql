-- The hold write's pointers without a foreign key each (issue 28: flash-sale's 10x). Each of
-- these keys ran a lookup and a row lock per row the hold batch writes, about 240 per batch
-- of 32 requests: a sixth of PostgreSQL's work per seat held (docs/performance.md). What
-- PostgreSQL enforces in their place, each half of a key:
-- * Writing a pointer: the hold statement (`booking::reserve::write`) can only point at rows
--   it wrote or updated itself (a reservation joins its counted schedule row, a claimed
--   seat its made reservation, a reservation's seat row is what a claim returned), and
--   fails whole unless every request got its reservation and every seat was claimed. The one other writer, a complimentary ticket
--   (`booking::keep`), locks its schedule, writes its reservation, and fails unless it
--   updated every seat it names.
-- * Removing what a pointer names: the triggers below refuse to delete a schedule, a
--   reservation or a seat while anything of these points at it, as the keys did. A layout
--   replacement deletes seats no reservation names (and keeps the others' rows).
-- reservations.user_id keeps its key: an operator can delete an account at any moment, and
-- the key's lock on the user row is what orders that against a hold written in its name.
-- Ids are never updated, so no trigger watches them (a row trigger on UPDATE would lock
-- every seat a hold claims); TRUNCATE is an operator's tool outside these rules. The
-- invariant checks (`boxoffice_store::invariants`, I7) count any pointer to nothing.
ALTER TABLE reservation_seats
    DROP CONSTRAINT reservation_seats_reservation_id_fkey,
    DROP CONSTRAINT reservation_seats_seat_id_fkey;
ALTER TABLE seats DROP CONSTRAINT seats_reservation_fk;
ALTER TABLE reservations DROP CONSTRAINT reservations_schedule_id_fkey;

-- Statement triggers with the deleted rows as a table: one check per DELETE, however many
-- rows (a layout replacement deletes thousands of seats), and nothing on any other write.
-- Arguments: pairs of (table, column) that point at the deleted table's id.
CREATE FUNCTION refuse_deleting_named() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i int := 0;
    named boolean;
BEGIN
    WHILE i < TG_NARGS LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM gone JOIN %I x ON x.%I = gone.id)', TG_ARGV[i], TG_ARGV[i + 1])
            INTO named;
        IF named THEN
            RAISE EXCEPTION 'a row of % that %.% names cannot be deleted', TG_TABLE_NAME, TG_ARGV[i], TG_ARGV[i + 1]
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        i := i + 2;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER reservations_named AFTER DELETE ON reservations
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_deleting_named('reservation_seats', 'reservation_id', 'seats', 'reservation_id');
CREATE TRIGGER seats_named AFTER DELETE ON seats
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_deleting_named('reservation_seats', 'seat_id');
CREATE TRIGGER schedules_named AFTER DELETE ON schedules
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION refuse_deleting_named('reservations', 'schedule_id');
