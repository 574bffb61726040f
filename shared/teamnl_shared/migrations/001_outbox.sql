-- Transactional outbox: rows written in the same transaction as the domain rows,
-- published to Kafka in seq order by the relay.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      text        NOT NULL,
    event_source  text        NOT NULL,
    event_type    text        NOT NULL,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    headers       jsonb       NOT NULL,   -- [[name, value], ...] incl. ce_* and traceparent
    value         bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (event_source, event_id)
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('teamnl_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The next Kafka offset per partition the relay knows to be its own, so that after a
-- crash it reads only what it wrote since then to find rows that already reached Kafka.
CREATE TABLE outbox_checkpoints (
    topic           text   NOT NULL,
    kafka_partition int    NOT NULL,
    next_offset     bigint NOT NULL,
    PRIMARY KEY (topic, kafka_partition)
);
