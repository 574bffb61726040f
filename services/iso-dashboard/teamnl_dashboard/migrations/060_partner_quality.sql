-- The per-partner data-quality reports of the ingestion services
-- (nl.teamnl.ops.partner.quality.reported.v1): one row per reporter, window and partner.
-- Outside the projection schema on purpose: the rows are idempotent facts about the
-- running system (a rebuild writes the same rows again, ON CONFLICT DO NOTHING), and the
-- scorecard sums them over a window.
CREATE TABLE partner_quality_reports (
    source               text        NOT NULL,
    report_id            text        NOT NULL,
    service              text        NOT NULL,
    reporter             text        NOT NULL,
    partner              text        NOT NULL,
    window_start         timestamptz NOT NULL,
    window_end           timestamptz NOT NULL,
    accepted             bigint      NOT NULL,
    replayed             bigint      NOT NULL,
    conflicting          bigint      NOT NULL,
    parked               bigint      NOT NULL,  -- accepted, never published (dead-lettered)
    rejected             jsonb       NOT NULL,  -- {problem kind: count}
    rejected_total       bigint      NOT NULL,
    lateness_samples     bigint      NOT NULL,
    lateness_p50_seconds double precision,
    lateness_max_seconds double precision,
    last_accepted_at     timestamptz,
    PRIMARY KEY (source, report_id)
);
CREATE INDEX partner_quality_reports_window ON partner_quality_reports (window_end, partner);
CREATE INDEX partner_quality_reports_partner ON partner_quality_reports (partner, service);
