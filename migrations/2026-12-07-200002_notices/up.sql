-- What boxoffice tells a user when no request of theirs is waiting for the answer: today, a
-- webhook given up on (issue 25: "the endpoint is disabled and the host told"). Written in
-- the transaction of what it tells; read and marked read by its user only.
CREATE TABLE notices (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (kind ~ '^[a-z_]+\.[a-z_]+$'),
    -- The object it is about, e.g. `webhooks/12`.
    subject     TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    message     TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 2000),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at     TIMESTAMPTZ
);
CREATE INDEX notices_user ON notices (user_id, id);
