-- Version 5 -> 6, in place: the running totals of events and activities are counted per
-- statement (a batch's rows are inserted by one statement, writes.py) instead of per row;
-- the totals' rows stay as they are. Run with search_path set to the live schema, inside
-- the caller's transaction.

DROP TRIGGER events_total ON events;
DROP TRIGGER activities_total ON activities;
DROP FUNCTION count_event();
DROP FUNCTION count_activity();

-- Events and activities are only ever inserted, a batch's as one statement (writes.py):
-- one delta row per key and statement, from the rows the statement inserted.
CREATE FUNCTION count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, events, last_event_at)
    SELECT family, count(*), max(time) FROM added GROUP BY family;
    RETURN NULL;
END $$;
CREATE TRIGGER events_total AFTER INSERT ON events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION count_events();

CREATE FUNCTION count_activities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, activities) SELECT family, count(*) FROM added GROUP BY family;
    INSERT INTO activity_months
    SELECT family, market, date_trunc('month', on_date)::date, count(*) FROM added GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;
CREATE TRIGGER activities_total AFTER INSERT ON activities
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION count_activities();

INSERT INTO projection_meta (version) VALUES (6);
