ALTER TABLE point_ledger DROP CONSTRAINT point_ledger_top_up_linked;
DROP INDEX point_ledger_top_up_credit;
ALTER TABLE point_ledger DROP COLUMN top_up_id;
ALTER TABLE point_ledger DROP CONSTRAINT point_ledger_kind_check;
-- Entries of the new kinds cannot be expressed in the old schema: the ledger is
-- append-only, so rolling back is refused while any exist (the constraint below fails).
ALTER TABLE point_ledger ADD CONSTRAINT point_ledger_kind_check
    CHECK (kind IN ('charge', 'payment', 'refund', 'adjustment'));
ALTER TABLE users DROP COLUMN points_debt;
DROP TABLE top_ups;
