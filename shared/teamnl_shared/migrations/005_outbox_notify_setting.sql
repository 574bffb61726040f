-- A writer whose relay runs in its own process wakes it there, and sets
-- teamnl.outbox_notify = 'off' on its connections: its commits then send no NOTIFY. A
-- NOTIFY takes PostgreSQL's cluster-wide notify lock at commit and holds it through the
-- commit's WAL flush, so every notifying commit of every database waits for the one
-- before it. Every other writer (another tool, a test, psql) still wakes the relay.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('teamnl.outbox_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('teamnl_outbox', '');
    END IF;
    RETURN NULL;
END $$;
