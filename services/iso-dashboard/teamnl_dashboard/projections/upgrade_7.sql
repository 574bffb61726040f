-- Version 6 -> 7, in place: the running totals of events and activities are kept per day
-- (an event's UTC day, an activity's date), so that a period's counts sum its days (the
-- totals are counted again from the rows); delta rows are marked, so that a fold reads only
-- the keys a batch touched; a period's missions and company supports are found by date.
-- Run with search_path set to the live schema, inside the caller's transaction.

DELETE FROM family_totals;
ALTER TABLE family_totals ADD COLUMN day date NOT NULL,
    ADD COLUMN delta boolean NOT NULL DEFAULT true;
CREATE INDEX family_totals_key ON family_totals (family, day);
CREATE INDEX family_totals_delta ON family_totals (family, day) WHERE delta;
ALTER TABLE activity_months ADD COLUMN delta boolean NOT NULL DEFAULT true;
CREATE INDEX activity_months_key ON activity_months (family, month);
CREATE INDEX activity_months_delta ON activity_months (family, month) WHERE delta;
CREATE INDEX nlib_missions_end ON nlib_missions (end_date);
CREATE INDEX nlib_companies_supported_on ON nlib_companies_supported (supported_on);
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
    WITH touched AS (SELECT DISTINCT family, day FROM family_totals WHERE delta),
    gone AS (DELETE FROM family_totals t USING touched
             WHERE (t.family, t.day) = (touched.family, touched.day) RETURNING t.*)
    INSERT INTO family_totals (family, day, events, last_event_at, activities, delta)
    SELECT family, day, sum(events), max(last_event_at), sum(activities), false
    FROM gone GROUP BY family, day;
    WITH touched AS (SELECT DISTINCT family, month FROM activity_months WHERE delta),
    gone AS (DELETE FROM activity_months t USING touched
             WHERE (t.family, t.month) = (touched.family, touched.month) RETURNING t.*)
    INSERT INTO activity_months (family, market, month, n, delta)
    SELECT family, market, month, sum(n), false FROM gone GROUP BY family, market, month;
    WITH twice AS (SELECT partners FROM tinl_partner_sets GROUP BY 1 HAVING count(*) > 1),
    gone AS (DELETE FROM tinl_partner_sets t USING twice
             WHERE t.partners = twice.partners RETURNING t.*)
    INSERT INTO tinl_partner_sets SELECT partners, sum(activities), sum(knowledge)
    FROM gone GROUP BY partners;
    WITH twice AS (SELECT status, since, until, sdgs FROM wp_portfolio
                   GROUP BY 1, 2, 3, 4 HAVING count(*) > 1),
    gone AS (DELETE FROM wp_portfolio t USING twice
             WHERE (t.status, t.since, t.sdgs) = (twice.status, twice.since, twice.sdgs)
             AND t.until IS NOT DISTINCT FROM twice.until RETURNING t.*)
    INSERT INTO wp_portfolio SELECT status, since, until, sdgs, sum(n)
    FROM gone GROUP BY status, since, until, sdgs;
    WITH twice AS (SELECT family, year FROM budget_totals GROUP BY 1, 2 HAVING count(*) > 1),
    gone AS (DELETE FROM budget_totals t USING twice
             WHERE (t.family, t.year) = (twice.family, twice.year) RETURNING t.*)
    INSERT INTO budget_totals SELECT family, year, sum(spends), sum(spent_cents)
    FROM gone GROUP BY family, year;
$$;

INSERT INTO projection_meta (version) VALUES (7);
