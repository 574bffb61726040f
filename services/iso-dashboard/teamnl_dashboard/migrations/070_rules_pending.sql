-- The rule evaluations projected events owe (rules/pending.py): one row per consumed fetch
-- whose events trigger rules, written in the transaction that projected them, deleted by
-- the rules worker in the transaction that evaluates them. Outside the projection schema:
-- a rebuild evaluates every rule at its end, and what is still owed stays owed.
CREATE TABLE rules_pending (
    id         bigserial   PRIMARY KEY,
    rules      text[]      NOT NULL,              -- rules to evaluate whole
    scoped     jsonb       NOT NULL DEFAULT '{}', -- rule -> {"projects": [..], "countries": [..]}
    queued_at  timestamptz NOT NULL DEFAULT now()
);
