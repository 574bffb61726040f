-- The outbox holds only what Kafka does not have yet: the relay deletes a row once Kafka
-- acknowledged it. It used to set published_at and keep the row, a second copy of every
-- event beside Kafka's that grew for ever, written twice (the UPDATE copied the whole row
-- and, the column being in the partial index's predicate, added index entries).
-- The rows marked published before are in Kafka: they go. A relay of the previous release
-- still running during a rolling upgrade fails on the missing column and retries; the new
-- release's relay takes over its leader lock.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX IF EXISTS outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;
