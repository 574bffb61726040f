-- Version 14 -> 15, in place: the overview's Global Stars target from running totals per day a
-- call closed (gs_call_totals) when the reading holds every date they count. It counted the
-- Dutch proposals of the reading's calls, call by call, at every computation: 15-19 ms while
-- the bench's 200 ev/s were projected (1,482 calls of the year, 6,286 proposals).
-- Run with search_path set to the live schema, inside the caller's transaction.

-- Global Stars calls per day closed ('infinity': open) and whole months the call took from
-- its negotiation's start (months_taken; -1: not known), with their Dutch proposals: the
-- overview's Global Stars target (queries.globalstars_summary). A call counts once it has
-- an opening or negotiation date (a reading up to a date leaves out a call without either),
-- with the Dutch proposals it has then; `latest` bounds every date its rows count (never
-- lowered: a reading up to an earlier date counts the rows instead).
CREATE TABLE gs_call_totals (
    closed_on date   NOT NULL,
    months    int    NOT NULL,
    calls     bigint NOT NULL,
    dutch     bigint NOT NULL,
    latest    date,
    delta     boolean NOT NULL DEFAULT true
);
CREATE INDEX gs_call_totals_key ON gs_call_totals (closed_on, months);
CREATE INDEX gs_call_totals_delta ON gs_call_totals (closed_on, months) WHERE delta;


-- The least whole months m >= 0 with closed <= started + m months (NULL if either is).
CREATE FUNCTION months_taken(started date, closed date) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m int := greatest(0, extract(year FROM age(closed, started))::int * 12
                         + extract(month FROM age(closed, started))::int);
BEGIN
    IF started IS NULL OR closed IS NULL THEN
        RETURN NULL;
    END IF;
    WHILE closed > started + make_interval(months => m) LOOP
        m := m + 1;
    END LOOP;
    WHILE m > 0 AND closed <= started + make_interval(months => m - 1) LOOP
        m := m - 1;
    END LOOP;
    RETURN m;
END $$;

CREATE FUNCTION count_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest)
        SELECT coalesce(OLD.closed_on, 'infinity'),
            coalesce(months_taken(OLD.negotiation_started_on, OLD.closed_on), -1), -1,
            -count(*) FILTER (WHERE p.dutch), greatest(OLD.closed_on, OLD.opened_on,
                OLD.negotiation_started_on, max(p.submitted_on) FILTER (WHERE p.dutch))
        FROM gs_proposals p WHERE p.call_id = OLD.call_id
        HAVING coalesce(OLD.opened_on, OLD.negotiation_started_on) IS NOT NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest)
        SELECT coalesce(NEW.closed_on, 'infinity'),
            coalesce(months_taken(NEW.negotiation_started_on, NEW.closed_on), -1), 1,
            count(*) FILTER (WHERE p.dutch), greatest(NEW.closed_on, NEW.opened_on,
                NEW.negotiation_started_on, max(p.submitted_on) FILTER (WHERE p.dutch))
        FROM gs_proposals p WHERE p.call_id = NEW.call_id
        HAVING coalesce(NEW.opened_on, NEW.negotiation_started_on) IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER gs_calls_total
    AFTER INSERT OR UPDATE OF call_id, negotiation_started_on, opened_on, closed_on OR DELETE
    ON gs_calls FOR EACH ROW EXECUTE FUNCTION count_call();

CREATE FUNCTION count_proposal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.dutch THEN
        INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest)
        SELECT coalesce(c.closed_on, 'infinity'),
            coalesce(months_taken(c.negotiation_started_on, c.closed_on), -1), 0, -1,
            OLD.submitted_on
        FROM gs_calls c WHERE c.call_id = OLD.call_id
            AND coalesce(c.opened_on, c.negotiation_started_on) IS NOT NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.dutch THEN
        INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest)
        SELECT coalesce(c.closed_on, 'infinity'),
            coalesce(months_taken(c.negotiation_started_on, c.closed_on), -1), 0, 1,
            NEW.submitted_on
        FROM gs_calls c WHERE c.call_id = NEW.call_id
            AND coalesce(c.opened_on, c.negotiation_started_on) IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER gs_proposals_total
    AFTER INSERT OR UPDATE OF call_id, dutch, submitted_on OR DELETE
    ON gs_proposals FOR EACH ROW EXECUTE FUNCTION count_proposal();
-- The Dutch proposals grouped once and joined: loaded tables have no index yet (a subquery
-- per call scanned every proposal: 27.8 s for 7,000 calls and 45,000 proposals, 35 ms so).
INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest, delta)
SELECT coalesce(c.closed_on, 'infinity'), coalesce(months_taken(c.negotiation_started_on, c.closed_on), -1),
       count(*), coalesce(sum(p.dutch), 0),
       max(greatest(c.closed_on, c.opened_on, c.negotiation_started_on, p.latest)), false
FROM gs_calls c
LEFT JOIN (SELECT call_id, count(*) AS dutch, max(submitted_on) AS latest FROM gs_proposals
           WHERE dutch GROUP BY call_id) p USING (call_id)
WHERE coalesce(c.opened_on, c.negotiation_started_on) IS NOT NULL
GROUP BY 1, 2;

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
    WITH touched AS (SELECT DISTINCT closed_on, months FROM gs_call_totals WHERE delta),
    gone AS (DELETE FROM gs_call_totals t USING touched
             WHERE (t.closed_on, t.months) = (touched.closed_on, touched.months) RETURNING t.*)
    INSERT INTO gs_call_totals (closed_on, months, calls, dutch, latest, delta)
    SELECT closed_on, months, sum(calls), sum(dutch), max(latest), false
    FROM gone GROUP BY closed_on, months;
END $$;

INSERT INTO projection_meta (version) VALUES (15);
