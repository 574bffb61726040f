-- Version 13 -> 14, in place: De Werkplaats's running spans without the set of SDGs a project
-- serves (wp_portfolio), and per SDG apart (wp_sdgs). A row per span and set of SDGs made 3,571
-- rows of the bench's 233,610 projects (and a delta row per project written between two
-- folds), grouped with their arrays again by every computation of the overview's targets
-- (15-20 ms while 200 ev/s were projected; 0.9 ms now) and by every fold (fold_totals 49-51
-- ms a call; 10 ms now).
-- Run with search_path set to the live schema, inside the caller's transaction.

CREATE TABLE wp_sdgs (
    sdg   int    NOT NULL,
    since int    NOT NULL,
    until int,
    n     bigint NOT NULL
);
INSERT INTO wp_sdgs (sdg, since, until, n)
SELECT sdg, since, until, sum(n) FROM wp_portfolio, unnest(sdgs) sdg GROUP BY 1, 2, 3;
ALTER TABLE wp_portfolio DROP COLUMN sdgs;
WITH gone AS (DELETE FROM wp_portfolio RETURNING *)
INSERT INTO wp_portfolio SELECT status, since, until, sum(n) FROM gone GROUP BY 1, 2, 3;

CREATE OR REPLACE FUNCTION count_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO wp_portfolio VALUES (OLD.status, extract(year FROM OLD.onboarded_on),
            extract(year FROM coalesce(OLD.graduated_on, OLD.stopped_on)), -1);
        INSERT INTO wp_sdgs SELECT sdg, extract(year FROM OLD.onboarded_on),
            extract(year FROM coalesce(OLD.graduated_on, OLD.stopped_on)), -1
        FROM unnest(OLD.sdgs) sdg;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO wp_portfolio VALUES (NEW.status, extract(year FROM NEW.onboarded_on),
            extract(year FROM coalesce(NEW.graduated_on, NEW.stopped_on)), 1);
        INSERT INTO wp_sdgs SELECT sdg, extract(year FROM NEW.onboarded_on),
            extract(year FROM coalesce(NEW.graduated_on, NEW.stopped_on)), 1
        FROM unnest(NEW.sdgs) sdg;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION fold_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
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
    WITH gone AS (DELETE FROM tinl_partner_sets RETURNING *)
    INSERT INTO tinl_partner_sets SELECT partners, sum(activities), sum(knowledge)
    FROM gone GROUP BY partners;
    WITH gone AS (DELETE FROM wp_portfolio RETURNING *)
    INSERT INTO wp_portfolio SELECT status, since, until, sum(n)
    FROM gone GROUP BY status, since, until;
    WITH gone AS (DELETE FROM wp_sdgs RETURNING *)
    INSERT INTO wp_sdgs SELECT sdg, since, until, sum(n) FROM gone GROUP BY sdg, since, until;
    WITH touched AS (SELECT DISTINCT family, year, spent_on FROM budget_totals WHERE delta),
    gone AS (DELETE FROM budget_totals t USING touched
             WHERE (t.family, t.year, t.spent_on) = (touched.family, touched.year,
                                                     touched.spent_on) RETURNING t.*)
    INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on, delta)
    SELECT family, year, sum(spends), sum(spent_cents), spent_on, false
    FROM gone GROUP BY family, year, spent_on;
END $$;

INSERT INTO projection_meta (version) VALUES (14);
