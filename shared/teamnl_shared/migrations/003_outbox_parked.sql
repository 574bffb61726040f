-- Outbox rows the relay can never publish (a record larger than Kafka accepts, a
-- non-retriable broker error for that record, a row that cannot be serialised). They are
-- moved here with the reason, so the relay goes on with the rows behind them; an operator
-- reads them with `teamnl-outbox parked` (or GET /v1/outbox/parked).
CREATE TABLE outbox_parked (
    seq           bigint      PRIMARY KEY,
    event_id      text        NOT NULL,
    event_source  text        NOT NULL,
    event_type    text        NOT NULL,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    headers       jsonb       NOT NULL,
    value         bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    parked_at     timestamptz NOT NULL DEFAULT now(),
    reason        text        NOT NULL
);
