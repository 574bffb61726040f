-- Failed sign-ins per account and per client address, shared by every dashboard instance
-- (owned by teamnl_dashboard.auth.throttle). The key is a SHA-256 of the normalised e-mail
-- address or the client's network, so the table keeps no typed-in text.
CREATE TABLE auth_login_failures (
    scope           text        NOT NULL CHECK (scope IN ('account', 'address')),
    key_hash        text        NOT NULL,
    failures        integer     NOT NULL,
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz,
    PRIMARY KEY (scope, key_hash)
);
CREATE INDEX auth_login_failures_last ON auth_login_failures (last_failure_at);
