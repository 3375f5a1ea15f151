-- Money that is real: top-ups through a payment provider (C17, I10), and the debt an
-- account owes when a provider cancels a payment whose points were already spent.

CREATE TABLE top_ups (
    id              BIGSERIAL PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    -- Ours, sent to the provider: the browser widget pays this order.
    order_id        TEXT NOT NULL UNIQUE CHECK (order_id ~ '^[A-Za-z0-9_-]{6,64}$'),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    provider        TEXT NOT NULL CHECK (provider IN ('sandbox', 'toss')),
    -- pending → confirmed | failed | cancelled; confirmed → refunding → refunded,
    -- confirmed → cancelled (by the provider, after credit).
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed', 'cancelled', 'refunding', 'refunded')),
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 100),
    -- The provider's, from the browser: known once the fan has paid (or claims to have).
    payment_key     TEXT UNIQUE CHECK (length(payment_key) BETWEEN 1 AND 200),
    failure         TEXT,
    -- Points the account could not give back when the provider cancelled after credit.
    debt_created    BIGINT NOT NULL DEFAULT 0 CHECK (debt_created >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at    TIMESTAMPTZ,
    -- I5: a key starts one top-up.
    UNIQUE (user_id, idempotency_key),
    CHECK (status NOT IN ('confirmed', 'refunding', 'refunded') OR (payment_key IS NOT NULL AND confirmed_at IS NOT NULL))
);
CREATE INDEX top_ups_user ON top_ups (user_id, id DESC);
-- The reconciliation job's work list.
CREATE INDEX top_ups_unsettled ON top_ups (updated_at) WHERE status IN ('pending', 'refunding');

ALTER TABLE users
    ADD COLUMN points_debt BIGINT NOT NULL DEFAULT 0 CHECK (points_debt >= 0);

ALTER TABLE point_ledger DROP CONSTRAINT point_ledger_kind_check;
ALTER TABLE point_ledger ADD CONSTRAINT point_ledger_kind_check CHECK (kind IN (
    'charge', 'payment', 'refund', 'adjustment',
    'top_up', 'top_up_refund', 'top_up_cancel', 'debt_repayment'));
ALTER TABLE point_ledger ADD COLUMN top_up_id BIGINT REFERENCES top_ups (id);
-- I10: a top-up is credited once, whatever races.
CREATE UNIQUE INDEX point_ledger_top_up_credit ON point_ledger (top_up_id) WHERE kind = 'top_up';
ALTER TABLE point_ledger ADD CONSTRAINT point_ledger_top_up_linked
    CHECK ((kind IN ('top_up', 'top_up_refund', 'top_up_cancel')) = (top_up_id IS NOT NULL));
