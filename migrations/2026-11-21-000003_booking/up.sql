-- Reservations (holds and paid orders) and the points ledger.

CREATE TABLE reservations (
    id              BIGSERIAL PRIMARY KEY,
    schedule_id     BIGINT NOT NULL REFERENCES schedules (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    status          TEXT NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled', 'expired')),
    seat_count      INT NOT NULL CHECK (seat_count > 0),
    -- Snapshot of the seats' prices when held: what the user pays whatever the layout says later.
    total_price     BIGINT NOT NULL CHECK (total_price >= 0),
    idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 100),
    expires_at      TIMESTAMPTZ NOT NULL,
    paid_at         TIMESTAMPTZ,
    cancelled_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- I5: a reserve request with the same key takes effect once.
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX reservations_user ON reservations (user_id, id DESC);
CREATE INDEX reservations_live ON reservations (schedule_id, user_id) WHERE status IN ('held', 'confirmed');
CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 'held';

CREATE TABLE reservation_seats (
    reservation_id BIGINT NOT NULL REFERENCES reservations (id),
    seat_id        BIGINT NOT NULL REFERENCES seats (id),
    grade_name     TEXT NOT NULL,
    price          BIGINT NOT NULL CHECK (price >= 0),
    PRIMARY KEY (reservation_id, seat_id)
);
CREATE INDEX reservation_seats_seat ON reservation_seats (seat_id);

ALTER TABLE seats
    ADD CONSTRAINT seats_reservation_fk FOREIGN KEY (reservation_id) REFERENCES reservations (id);

-- Append-only: a user's balance equals the sum of their entries (I3).
CREATE TABLE point_ledger (
    id              BIGSERIAL PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL CHECK (kind IN ('charge', 'payment', 'refund', 'adjustment')),
    amount          BIGINT NOT NULL CHECK (amount <> 0),
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    reservation_id  BIGINT REFERENCES reservations (id),
    idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 100),
    reason          TEXT,
    actor_id        BIGINT REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- I5: a charge or payment with the same key takes effect once.
    UNIQUE (user_id, kind, idempotency_key)
);
CREATE INDEX point_ledger_user ON point_ledger (user_id, id DESC);

CREATE FUNCTION point_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'point_ledger is append-only';
END $$;
CREATE TRIGGER point_ledger_append_only BEFORE UPDATE OR DELETE ON point_ledger
    FOR EACH ROW EXECUTE FUNCTION point_ledger_append_only();
