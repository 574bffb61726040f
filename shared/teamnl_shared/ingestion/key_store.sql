-- Partner API keys. Idempotent DDL (not a numbered migration) because the key store may be
-- one database shared by the three initiative services (setting KEYS_DATABASE_URL).
-- Only the SHA-256 of the secret part is stored; key_id is the public part of the key.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id         text        PRIMARY KEY,
    secret_sha256  text        NOT NULL,
    partner        text        NOT NULL,
    service        text        NOT NULL,
    event_types    text[]      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_by_service ON api_keys (service, partner);
