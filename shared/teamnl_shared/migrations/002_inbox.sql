-- Inbox of an idempotent consumer: one row per applied event, written in the same
-- transaction as the event's effect.
CREATE TABLE inbox (
    event_source  text        NOT NULL,
    event_id      text        NOT NULL,
    event_type    text        NOT NULL,
    topic         text        NOT NULL,
    kafka_partition int       NOT NULL,
    kafka_offset  bigint      NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_source, event_id)
);
