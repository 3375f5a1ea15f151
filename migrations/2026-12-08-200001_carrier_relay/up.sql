-- A hold batch writes its reservation.held events as one carrier row again (subject `batch`,
-- `data` {"events": [...]}), and the relay publishes its items straight from it; only for a
-- webhook that wants them does it write them as rows of their own, after later events of the
-- same reservation may already have been written. A subject's deliveries are therefore
-- ordered by delivery id (the relay creates them in event order), as 2026-12-07-200003 did.
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, subject, id) WHERE status = 'pending';
-- A carrier's payload is several KB (a batch of up to 128 reservations): lz4 compresses it
-- into TOAST for a fraction of pglz's CPU, and it is compressed inside the schedule's lock.
ALTER TABLE outbox ALTER COLUMN data SET COMPRESSION lz4;
