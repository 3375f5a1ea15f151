-- Tickets and the door (C18, I11): a signed ticket per paid seat, the public keys that
-- verify them, scanner credentials per performance, and every scan with its nonce.

-- Every key that has signed tickets, so an old key still verifies after the server's
-- signing key is rotated (configuration holds only the current private key).
CREATE TABLE ticket_keys (
    key_id      INTEGER PRIMARY KEY CHECK (key_id >= 0),
    public_key  BYTEA NOT NULL UNIQUE CHECK (length(public_key) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- No foreign key to schedules here or in check_ins: a foreign key takes a KEY SHARE lock on
-- the schedule row, which hold batches hold FOR UPDATE, so a payment (holding its user row,
-- which a batch may wait for) would deadlock with a batch, and the door would queue behind
-- every sale. The schedule is the reservation's; the invariants check it.
CREATE TABLE tickets (
    id              BIGSERIAL PRIMARY KEY,
    reservation_id  BIGINT NOT NULL REFERENCES reservations (id),
    schedule_id     BIGINT NOT NULL,
    seat_id         BIGINT NOT NULL REFERENCES seats (id),
    key_id          INTEGER NOT NULL REFERENCES ticket_keys (key_id),
    -- Whole seconds: the code signs Unix seconds.
    issued_at       TIMESTAMPTZ NOT NULL CHECK (issued_at = date_trunc('second', issued_at)),
    code            TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'used', 'revoked')),
    checked_in_at   TIMESTAMPTZ,
    gate            TEXT,
    revoked_at      TIMESTAMPTZ,
    UNIQUE (reservation_id, seat_id),
    -- A used ticket says where and when; a valid one was never let in. A revoked one may
    -- have been (a performance cancelled after its doors opened).
    CHECK (status <> 'used' OR (checked_in_at IS NOT NULL AND gate IS NOT NULL)),
    CHECK (status <> 'valid' OR (checked_in_at IS NULL AND gate IS NULL)),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX tickets_reservation ON tickets (reservation_id);
-- A seat has at most one ticket that is not revoked.
CREATE UNIQUE INDEX tickets_live_seat ON tickets (seat_id) WHERE status <> 'revoked';
-- revokedTickets(scheduleId, since), the offline scanners' catch-up.
CREATE INDEX tickets_revoked ON tickets (schedule_id, revoked_at) WHERE status = 'revoked';
-- The door's running count.
CREATE INDEX tickets_used ON tickets (schedule_id, gate) WHERE status = 'used';

-- A door credential for one performance: it can check in, nothing else.
CREATE TABLE scanners (
    id          BIGSERIAL PRIMARY KEY,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the token: the token itself is shown once, to its creator.
    token_hash  BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_by  BIGINT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX scanners_schedule ON scanners (schedule_id, id);

-- Every scan that named a genuine code, online or uploaded from offline, by its nonce.
CREATE TABLE check_ins (
    id                BIGSERIAL PRIMARY KEY,
    schedule_id       BIGINT NOT NULL,
    scanner_id        BIGINT NOT NULL REFERENCES scanners (id),
    nonce             TEXT NOT NULL CHECK (length(nonce) BETWEEN 1 AND 100),
    -- SHA-256 of the code as sent: the same nonce on another code is not a repeat.
    code_hash         BYTEA NOT NULL CHECK (length(code_hash) = 32),
    ticket_id         BIGINT REFERENCES tickets (id),
    gate              TEXT NOT NULL CHECK (length(gate) BETWEEN 1 AND 100),
    scanned_at        TIMESTAMPTZ NOT NULL,
    offline           BOOLEAN NOT NULL,
    status            TEXT NOT NULL CHECK (status IN
                        ('ADMITTED', 'ALREADY_USED', 'INVALID', 'WRONG_SCHEDULE', 'REVOKED', 'NOT_YET', 'ENDED')),
    first_check_in_at TIMESTAMPTZ,
    first_gate        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- I5 for scans: a nonce takes effect once.
    UNIQUE (schedule_id, nonce)
);
-- I11: a ticket is admitted at most once, whatever the code paths.
CREATE UNIQUE INDEX check_ins_one_admission ON check_ins (ticket_id) WHERE status = 'ADMITTED';
