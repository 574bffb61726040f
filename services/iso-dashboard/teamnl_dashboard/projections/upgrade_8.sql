-- Version 7 -> 8, in place: the fold of the running totals is PL/pgSQL, whose statements'
-- plans are kept per connection; as a SQL function it planned its five statements again on
-- every call, once per consumed fetch (1.7 of its 2 ms at the bench's 112 ev/s).
-- Run with search_path set to the live schema, inside the caller's transaction.

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
END $$;

INSERT INTO projection_meta (version) VALUES (8);
