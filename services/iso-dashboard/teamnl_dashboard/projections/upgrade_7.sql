-- Version 6 -> 7, in place: the running totals of events and activities are kept per day
-- (an event's UTC day, an activity's date), so that a period's counts sum its days; the
-- totals are counted again from the rows. Run with search_path set to the live schema,
-- inside the caller's transaction.

DELETE FROM family_totals;
ALTER TABLE family_totals ADD COLUMN day date NOT NULL;
INSERT INTO family_totals (family, day, events, last_event_at)
SELECT family, (time AT TIME ZONE 'UTC')::date, count(*), max(time) FROM events GROUP BY 1, 2;
INSERT INTO family_totals (family, day, activities)
SELECT family, on_date, count(*) FROM activities GROUP BY 1, 2;

CREATE OR REPLACE FUNCTION count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, day, events, last_event_at)
    SELECT family, (time AT TIME ZONE 'UTC')::date, count(*), max(time) FROM added GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION count_activities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, day, activities)
    SELECT family, on_date, count(*) FROM added GROUP BY 1, 2;
    INSERT INTO activity_months
    SELECT family, market, date_trunc('month', on_date)::date, count(*) FROM added GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION fold_totals() RETURNS void LANGUAGE sql AS $$
    WITH twice AS (SELECT family, day FROM family_totals GROUP BY 1, 2 HAVING count(*) > 1),
    gone AS (DELETE FROM family_totals t USING twice
             WHERE (t.family, t.day) = (twice.family, twice.day) RETURNING t.*)
    INSERT INTO family_totals (family, day, events, last_event_at, activities)
    SELECT family, day, sum(events), max(last_event_at), sum(activities)
    FROM gone GROUP BY family, day;
    WITH gone AS (DELETE FROM activity_months RETURNING *)
    INSERT INTO activity_months SELECT family, market, month, sum(n)
    FROM gone GROUP BY family, market, month;
    WITH gone AS (DELETE FROM tinl_partner_sets RETURNING *)
    INSERT INTO tinl_partner_sets SELECT partners, sum(activities), sum(knowledge)
    FROM gone GROUP BY partners;
    WITH gone AS (DELETE FROM wp_portfolio RETURNING *)
    INSERT INTO wp_portfolio SELECT status, since, until, sdgs, sum(n)
    FROM gone GROUP BY status, since, until, sdgs;
    WITH gone AS (DELETE FROM budget_totals RETURNING *)
    INSERT INTO budget_totals SELECT family, year, sum(spends), sum(spent_cents)
    FROM gone GROUP BY family, year;
$$;

INSERT INTO projection_meta (version) VALUES (7);
