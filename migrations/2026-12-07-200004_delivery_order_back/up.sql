-- 2026-12-07-200003 ordered a subject's deliveries by delivery id for the hold batch's
-- carrier rows, which were measured no cheaper and taken out again: the claim orders by
-- outbox id as before, so the index is the earlier one again. (Migrations only go forward:
-- a database may already have run 200003.)
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, subject, outbox_id) WHERE status = 'pending';
