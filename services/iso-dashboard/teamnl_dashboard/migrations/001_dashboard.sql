-- The dashboard's own state outside the (rebuildable) projections: findings of the
-- coherence rules with their human decisions, and the coherence score over time.
CREATE TABLE findings (
    id              bigserial   PRIMARY KEY,
    rule            text        NOT NULL,
    rule_version    int         NOT NULL,
    finding_key     text        NOT NULL,   -- the situation, e.g. a mission id
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    summary         text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}',
    event_ids       text[]      NOT NULL DEFAULT '{}',
    state           text        NOT NULL DEFAULT 'open'
                                CHECK (state IN ('open', 'acknowledged', 'resolved')),
    -- true while the rule still sees the situation; a finding resolved by hand while it
    -- holds is not raised again until the situation has cleared once.
    condition_holds boolean     NOT NULL DEFAULT true,
    raised_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by     text,
    resolved_at     timestamptz
);
CREATE UNIQUE INDEX findings_live ON findings (rule, finding_key) WHERE condition_holds;
CREATE INDEX findings_state ON findings (state, raised_at DESC);

CREATE TABLE finding_changes (
    id          bigserial   PRIMARY KEY,
    finding_id  bigint      NOT NULL REFERENCES findings (id),
    state       text        NOT NULL,
    changed_by  text        NOT NULL,   -- a member, or 'rules' for automatic changes
    changed_at  timestamptz NOT NULL,
    note        text
);
CREATE INDEX finding_changes_finding ON finding_changes (finding_id, id);

CREATE TABLE coherence_scores (
    at                 timestamptz PRIMARY KEY,
    score              numeric(5, 1) NOT NULL,
    joint_actions      int           NOT NULL,
    duplications       int           NOT NULL,
    weighted_findings  numeric(8, 2) NOT NULL
);
