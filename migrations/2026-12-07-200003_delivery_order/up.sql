-- A hold batch's events reach the outbox as one carrier row that the relay splits, so the
-- split events get outbox ids after later events of the same reservation. The order of a
-- subject's deliveries is therefore the order the relay created them in (the delivery id),
-- not the outbox id: the claim's "an earlier one is still pending" looks it up here.
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, subject, id) WHERE status = 'pending';
