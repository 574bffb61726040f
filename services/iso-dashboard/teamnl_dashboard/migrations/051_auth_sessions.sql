-- Server-side sessions. The cookie holds a random token; only its HMAC is stored, so a copy
-- of this table gives no usable cookies. Each session has its own CSRF synchroniser token.
CREATE TABLE auth_sessions (
    key_hash   text        PRIMARY KEY,
    member_id  bigint      NOT NULL REFERENCES auth_members (id) ON DELETE CASCADE,
    csrf_token text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX auth_sessions_member ON auth_sessions (member_id);
CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at);
