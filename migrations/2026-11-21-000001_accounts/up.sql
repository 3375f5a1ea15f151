-- Accounts, refresh tokens and the audit log of privileged actions.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    -- Stored lower-cased and trimmed by the application; unique as such.
    email         TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'host', 'admin')),
    -- The balance is also the sum of the user's ledger entries (I3); never negative.
    points        BIGINT NOT NULL DEFAULT 0 CHECK (points >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Admin search over email and display name (ILIKE '%...%').
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_search_trgm ON users USING gin ((email || ' ' || display_name) gin_trgm_ops);

-- Opaque refresh tokens, stored only as SHA-256 hashes. Each login starts a family; every
-- refresh marks the presented token used and issues the next one of the same family.
-- Presenting a used token again means it leaked: the whole family is revoked.
CREATE TABLE refresh_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   BIGINT,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created ON audit_log (created_at DESC, id DESC);
