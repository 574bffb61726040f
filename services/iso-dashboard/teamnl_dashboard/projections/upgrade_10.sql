-- Version 9 -> 10, in place: a network event's row in `events` is its inbox row
-- (projections/ledger.py). It takes the topic, partition and offset of the event's inbox
-- row, which goes; ops events keep theirs. An event's type names its topic, so its
-- source, id and type find its inbox row.
-- Run with search_path set to the live schema, inside the caller's transaction.

ALTER TABLE events
    ADD COLUMN topic text, ADD COLUMN kafka_partition int, ADD COLUMN kafka_offset bigint;
UPDATE events e SET topic = i.topic, kafka_partition = i.kafka_partition,
    kafka_offset = i.kafka_offset
FROM inbox i
WHERE (i.event_source, i.event_id, i.event_type) = (e.source, e.event_id, e.type);
DELETE FROM inbox i USING events e
WHERE (i.event_source, i.event_id, i.event_type) = (e.source, e.event_id, e.type);
ALTER TABLE events
    ALTER COLUMN topic SET NOT NULL,
    ALTER COLUMN kafka_partition SET NOT NULL,
    ALTER COLUMN kafka_offset SET NOT NULL;

INSERT INTO projection_meta (version) VALUES (10);
