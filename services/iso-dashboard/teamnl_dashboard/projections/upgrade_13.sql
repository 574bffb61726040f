-- Version 12 -> 13, in place: the budget's running totals per day spent, as the events' and
-- activities' are per day. A reading as of a past date summed every spending up to it
-- (0.3 s at the bench's 584,000, for each of a score series' month ends); it sums the days.
-- Folded by the keys with delta rows, as the totals per day are, no longer whole.
-- Run with search_path set to the live schema, inside the caller's transaction.

ALTER TABLE budget_totals ADD COLUMN spent_on date, ADD COLUMN delta boolean;
DELETE FROM budget_totals;
INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on, delta)
SELECT family, year, count(*), sum(amount_cents), spent_on, false FROM budget_spent
GROUP BY family, year, spent_on;
ALTER TABLE budget_totals ALTER COLUMN spent_on SET NOT NULL,
    ALTER COLUMN delta SET NOT NULL, ALTER COLUMN delta SET DEFAULT true;
CREATE INDEX budget_totals_key ON budget_totals (family, year, spent_on);
CREATE INDEX budget_totals_delta ON budget_totals (family, year, spent_on) WHERE delta;

CREATE OR REPLACE FUNCTION sum_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on)
        VALUES (OLD.family, OLD.year, -1, -OLD.amount_cents, OLD.spent_on);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on)
        VALUES (NEW.family, NEW.year, 1, NEW.amount_cents, NEW.spent_on);
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
    INSERT INTO wp_portfolio SELECT status, since, until, sdgs, sum(n)
    FROM gone GROUP BY status, since, until, sdgs;
    WITH touched AS (SELECT DISTINCT family, year, spent_on FROM budget_totals WHERE delta),
    gone AS (DELETE FROM budget_totals t USING touched
             WHERE (t.family, t.year, t.spent_on) = (touched.family, touched.year,
                                                     touched.spent_on) RETURNING t.*)
    INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on, delta)
    SELECT family, year, sum(spends), sum(spent_cents), spent_on, false
    FROM gone GROUP BY family, year, spent_on;
END $$;

INSERT INTO projection_meta (version) VALUES (13);
