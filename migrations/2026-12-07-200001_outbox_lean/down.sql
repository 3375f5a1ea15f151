CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_subject ON outbox (subject, id);
