-- Events out (C20, I12): the transactional outbox, the webhooks hosts subscribe, each
-- webhook's deliveries with their attempts, and the relay's lease.

-- One row per event, written in the transaction of the change it tells (so an event of a
-- rolled-back change never exists). `id` orders the events of one subject: changes of one
-- reservation are serialized by its row lock, so the later change's event gets the higher id.
CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    -- The CloudEvents id, also the Standard Webhooks `webhook-id` (the same on every retry).
    event_id    UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    event_type  TEXT NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    -- What the event is about, e.g. `reservations/42`: events of one subject stay in order.
    subject     TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    -- Which hosts' webhooks may see it (NULL: admins' webhooks only, e.g. a top-up).
    concert_id  BIGINT,
    data        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set once the relay has put it on the Redis stream and queued its webhook deliveries.
    relayed_at  TIMESTAMPTZ
);
-- The relay's work list stays small: only events not yet relayed.
CREATE INDEX outbox_unrelayed ON outbox (id) WHERE relayed_at IS NULL;
-- Pruning, and the invariant check (every recent reservation change has its event).
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_subject ON outbox (subject, id);

CREATE TABLE webhooks (
    id                      BIGSERIAL PRIMARY KEY,
    owner_id                BIGINT NOT NULL REFERENCES users (id),
    -- NULL: every concert (admins only).
    concert_id              BIGINT REFERENCES concerts (id),
    url                     TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types             TEXT[] NOT NULL CHECK (cardinality(event_types) >= 1),
    -- `whsec_…`; shown to the owner once, kept to sign.
    secret                  TEXT NOT NULL,
    -- After a rotation the old secret signs too, until then, so receivers can switch.
    previous_secret         TEXT,
    previous_secret_until   TIMESTAMPTZ,
    -- Set when deliveries were given up (or the receiver answered 410): nothing more is sent.
    disabled_at             TIMESTAMPTZ,
    disabled_reason         TEXT,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id);

-- One row per (webhook, event): where its delivery stands.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    outbox_id       BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    -- pending → delivered | failed (given up)
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A relay sending it now holds it until then; after it (the relay died) another may.
    claimed_until   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    UNIQUE (webhook_id, outbox_id)
);
-- What is due, and what must go first (an earlier pending delivery of the same subject).
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, subject, outbox_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);

-- Every attempt, for the owner's delivery log.
CREATE TABLE webhook_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    status_code  INT,
    latency_ms   BIGINT NOT NULL CHECK (latency_ms >= 0),
    outcome      TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'gone')),
    error        TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- The relay runs on one instance at a time: whoever holds this row's lease. A lease that is
-- not renewed runs out, so an instance that dies hands the relay on within one lease time.
CREATE TABLE relay_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
