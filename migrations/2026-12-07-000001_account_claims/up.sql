-- An invited account (issueComplimentary to a new e-mail) is claimed through a link the host
-- passes on: its token sets the account's password once (claimAccount). One row per invited
-- account: a new comp to it while unclaimed replaces the token (the old one stops working),
-- a claim (or any other password set) closes it. The token is `ct_<selector>_<verifier>`:
-- the selector finds the row, only a SHA-256 of the verifier is kept, compared in constant
-- time, so neither a database reader nor a timing observer learns a usable token.
CREATE TABLE account_claims (
    user_id       BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    selector      TEXT NOT NULL UNIQUE CHECK (length(selector) BETWEEN 1 AND 64),
    verifier_hash BYTEA NOT NULL CHECK (length(verifier_hash) = 32),
    issued_by     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    issued_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    claimed_at    TIMESTAMPTZ
);

-- Invited accounts made before this table existed: still unclaimed (never signed in), with
-- a row no token matches (an all-zero hash), expired, so the next comp to them renews it.
INSERT INTO account_claims (user_id, selector, verifier_hash, issued_at, expires_at)
SELECT DISTINCT u.id, 'legacy-' || u.id, decode(repeat('00', 32), 'hex'), now(), now()
FROM audit_log a
JOIN users u ON u.id = (a.details ->> 'guest')::bigint
WHERE a.action = 'issue_complimentary'
  AND (a.details ->> 'invited')::boolean
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.user_id = u.id);
