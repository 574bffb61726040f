-- Ingestion receipts: one row per accepted event, written in the same transaction as the
-- state rows and the outbox row. (source, id) identifies an event; the fingerprint tells a
-- replay (same content: answer the stored receipt) from a conflict (other content: 409).
CREATE TABLE ingestion_receipts (
    event_source  text        NOT NULL,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    fingerprint   text        NOT NULL,
    partner       text        NOT NULL,
    receipt       json        NOT NULL,   -- json, not jsonb: a replay returns the same bytes
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_source, event_id)
);
