-- The witness of a write whose COMMIT may go unanswered (the services' `in_doubt::write`):
-- its transaction's id and `now()`, written as the transaction's last statement. A writer
-- that lost the COMMIT's answer finds its row on the primary it reaches next, or knows the
-- write never committed there (a standby promoted without it may have handed the same
-- transaction id to another transaction, which the id alone cannot tell). Later writes
-- delete marks older than anyone settles; the booking writes have witnesses of their own
-- (a reservation's created_at, paid_at, cancelled_at) and write none.
CREATE TABLE write_marks (
    txid BIGINT NOT NULL,
    at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (txid, at)
);
CREATE INDEX write_marks_at ON write_marks (at);
