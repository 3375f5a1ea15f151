ALTER TABLE outbox ALTER COLUMN data SET COMPRESSION default;
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, subject, outbox_id) WHERE status = 'pending';
