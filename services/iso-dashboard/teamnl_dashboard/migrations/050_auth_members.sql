-- ISO NL members who may sign in to the dashboard (owned by teamnl_dashboard.auth).
CREATE TABLE auth_members (
    id            bigserial PRIMARY KEY,
    email         text        NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('member', 'secretariat', 'admin')),
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (email)
);
