-- The dashboard's projections. Applied to a schema of their own (search_path set by the
-- caller): `proj` is the live one, a rebuild fills `proj_rebuild_<n>` and swaps it in.
-- A change here bumps PROJECTION_VERSION (projections/schema.py) and needs a rebuild.

CREATE TABLE projection_meta (
    version     int         NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);

-- Idempotent consumer bookkeeping (same shape as teamnl_shared's inbox), per schema so
-- that a rebuild has its own: of ops events only; a network event's is its `events` row
-- (projections/ledger.py).
CREATE TABLE inbox (
    event_source    text        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    -- An event's identity is (source, id) within the topic it came from: one partner may
    -- send the same id to two services, and both events count.
    PRIMARY KEY (topic, event_source, event_id)
);

-- Records that failed validation (or that a projection refused), per original offset.
CREATE TABLE dead_letters (
    topic           text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    event_id        text,
    event_type      text,
    reason          text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);

-- Cross-network: every applied event, and the activity-like facts of every initiative.
-- An event's row is also its inbox row: where it came from, and its identity (a family
-- has one topic, so the key tells events apart as (topic, source, id) does).
CREATE TABLE events (
    event_id        text        NOT NULL,
    source          text        NOT NULL,
    type            text        NOT NULL,
    family          text        NOT NULL,
    subject         text        NOT NULL,
    time            timestamptz NOT NULL,
    title           text        NOT NULL,   -- data.title or a label per type (titles.py)
    topic           text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    PRIMARY KEY (family, source, event_id)
);
CREATE INDEX events_family_time ON events (family, time);
CREATE INDEX events_time ON events (time DESC);

CREATE TABLE activities (
    event_id    text        NOT NULL,
    source      text        NOT NULL,
    family      text        NOT NULL,
    kind        text        NOT NULL,   -- mission, followup, event, fair, onboarding, call ...
    market      text,                   -- country code or 'smart-cities'
    country     text,
    city        text,
    on_date     date        NOT NULL,
    PRIMARY KEY (family, source, event_id)
);
CREATE INDEX activities_date ON activities (on_date);

CREATE TABLE budget_spent (
    family          text    NOT NULL,
    spend_id        text    NOT NULL,
    year            int     NOT NULL,
    amount_cents    bigint  NOT NULL CHECK (amount_cents >= 0),
    category        text    NOT NULL,
    spent_on        date    NOT NULL,
    event_id        text    NOT NULL,
    PRIMARY KEY (family, spend_id)
);
CREATE INDEX budget_spent_latest ON budget_spent (family, year, spent_on DESC, spend_id);
CREATE INDEX budget_spent_on ON budget_spent (spent_on);

-- NLIB
CREATE TABLE nlib_missions (
    mission_id          text PRIMARY KEY,
    title               text NOT NULL,
    direction           text NOT NULL,
    country             text NOT NULL,
    city                text NOT NULL,
    city_of_opportunity text,
    start_date          date NOT NULL,
    end_date            date NOT NULL,
    status              text NOT NULL,      -- planned | held
    companies           int,
    business_mixers     int,
    leads               int,
    planned_event_id    text,
    held_event_id       text
);
-- the rules' "latest activity per place" (rules/facts.py) walks these, one place at a time
CREATE INDEX nlib_missions_place ON nlib_missions
    (country, (coalesce(city_of_opportunity, city)), end_date DESC, mission_id)
    WHERE status = 'held';
-- a period's missions (queries.nlib): those ending in it
CREATE INDEX nlib_missions_end ON nlib_missions (end_date);

CREATE TABLE nlib_followups (
    followup_id text PRIMARY KEY,
    mission_id  text NOT NULL,
    held_on     date NOT NULL,
    kind        text NOT NULL,
    companies   int  NOT NULL,
    event_id    text NOT NULL
);
CREATE INDEX nlib_followups_mission ON nlib_followups (mission_id);

CREATE TABLE nlib_leads_converted (
    lead_id              text   PRIMARY KEY,
    mission_id           text   NOT NULL,
    company              text   NOT NULL,
    contract_value_cents bigint NOT NULL,
    converted_on         date   NOT NULL,
    event_id             text   NOT NULL
);
CREATE INDEX nlib_leads_converted_mission ON nlib_leads_converted (mission_id);

CREATE TABLE nlib_cities (
    city_id      text PRIMARY KEY,
    city         text NOT NULL,
    country      text NOT NULL,
    tier         text NOT NULL,
    soft_landing text NOT NULL,
    updated_on   date NOT NULL,
    event_id     text NOT NULL
);

CREATE TABLE nlib_companies_supported (
    event_id     text NOT NULL,
    source       text NOT NULL,
    company_id   text NOT NULL,
    kind         text NOT NULL,
    country      text,
    supported_on date NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX nlib_companies_supported_on ON nlib_companies_supported (supported_on);

-- TINL
CREATE TABLE tinl_activities (
    activity_id text   PRIMARY KEY,
    title       text   NOT NULL,
    kind        text   NOT NULL,
    market      text   NOT NULL,
    country     text   NOT NULL,
    city        text   NOT NULL,
    start_date  date   NOT NULL,
    end_date    date   NOT NULL,
    partners    text[] NOT NULL,
    event_id    text   NOT NULL
);
CREATE INDEX tinl_activities_place ON tinl_activities
    (market, country, city, end_date DESC, activity_id);
CREATE INDEX tinl_activities_latest ON tinl_activities (end_date DESC, event_id);

CREATE TABLE tinl_knowledge (
    knowledge_id text   PRIMARY KEY,
    topic        text   NOT NULL,
    partners     text[] NOT NULL,
    shared_on    date   NOT NULL,
    event_id     text   NOT NULL
);
CREATE INDEX tinl_knowledge_latest ON tinl_knowledge (shared_on DESC, event_id);

-- Global Stars
CREATE TABLE gs_calls (
    call_id                text PRIMARY KEY,
    country                text,
    theme                  text,
    negotiation_started_on date,
    opened_on              date,
    closed_on              date,
    dutch_proposals        int,           -- as reported when the call closed
    opened_event_id        text,
    closed_event_id        text
);

CREATE TABLE gs_proposals (
    proposal_id       text    PRIMARY KEY,
    call_id           text    NOT NULL,
    lead_organisation text    NOT NULL,
    dutch             boolean NOT NULL,
    submitted_on      date    NOT NULL,
    event_id          text    NOT NULL
);
CREATE INDEX gs_proposals_call ON gs_proposals (call_id);

-- De Werkplaats
CREATE TABLE wp_projects (
    project_id         text   PRIMARY KEY,
    title              text   NOT NULL,
    country            text   NOT NULL,
    sectors            text[] NOT NULL,
    sdgs               int[]  NOT NULL,
    onboarded_on       date   NOT NULL,
    status             text   NOT NULL,   -- active | graduated | stopped
    graduated_on       date,
    stopped_on         date,
    stop_reason        text,
    onboarded_event_id text   NOT NULL,
    ended_event_id     text
);
CREATE INDEX wp_projects_country ON wp_projects (country);

CREATE TABLE wp_members (
    project_id text NOT NULL,
    member     text NOT NULL,
    joined_on  date,
    PRIMARY KEY (project_id, member)
);

CREATE TABLE wp_milestones (
    event_id   text NOT NULL,
    source     text NOT NULL,
    project_id text NOT NULL,
    milestone  text NOT NULL,
    reached_on date NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX wp_milestones_project ON wp_milestones (project_id);

-- Running totals the overview and the rules read instead of counting millions of rows.
-- Triggers append delta rows per change (no hot row, no lock shared between writers, so
-- every writer - live consumer, rebuild - keeps them right); `fold_totals()`, called once
-- per consumed batch, folds the deltas into one row per key. Readers sum the rows.
-- Per family and day (an event's UTC day, an activity's date): a period's counts sum its
-- days instead of counting its rows.
CREATE TABLE family_totals (
    family        text        NOT NULL,
    events        bigint      NOT NULL DEFAULT 0,
    last_event_at timestamptz,
    activities    bigint      NOT NULL DEFAULT 0,
    day           date        NOT NULL,
    delta         boolean     NOT NULL DEFAULT true  -- not yet folded (fold_totals)
);
CREATE INDEX family_totals_key ON family_totals (family, day);
CREATE INDEX family_totals_delta ON family_totals (family, day) WHERE delta;

CREATE TABLE activity_months (
    family text    NOT NULL,
    market text,
    month  date    NOT NULL,
    n      bigint  NOT NULL,
    delta  boolean NOT NULL DEFAULT true
);
CREATE INDEX activity_months_key ON activity_months (family, month);
CREATE INDEX activity_months_delta ON activity_months (family, month) WHERE delta;

-- Per family, budget year and day spent: a reading as of a date sums the days up to it.
CREATE TABLE budget_totals (
    family      text    NOT NULL,
    year        int     NOT NULL,
    spends      bigint  NOT NULL,
    spent_cents numeric NOT NULL, -- a sum of many events: past a bigint after ~922,000 maximal
    spent_on    date    NOT NULL,
    delta       boolean NOT NULL DEFAULT true  -- not yet folded (fold_totals)
);
CREATE INDEX budget_totals_key ON budget_totals (family, year, spent_on);
CREATE INDEX budget_totals_delta ON budget_totals (family, year, spent_on) WHERE delta;

-- Events and activities are only ever inserted, a batch's as one statement (writes.py):
-- one delta row per key and statement, from the rows the statement inserted.
CREATE FUNCTION count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, day, events, last_event_at)
    SELECT family, (time AT TIME ZONE 'UTC')::date, count(*), max(time) FROM added GROUP BY 1, 2;
    RETURN NULL;
END $$;
CREATE TRIGGER events_total AFTER INSERT ON events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION count_events();

CREATE FUNCTION count_activities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, day, activities)
    SELECT family, on_date, count(*) FROM added GROUP BY 1, 2;
    INSERT INTO activity_months
    SELECT family, market, date_trunc('month', on_date)::date, count(*) FROM added GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;
CREATE TRIGGER activities_total AFTER INSERT ON activities
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION count_activities();

CREATE FUNCTION sum_spend() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER budget_total AFTER INSERT OR UPDATE OR DELETE ON budget_spent
    FOR EACH ROW EXECUTE FUNCTION sum_spend();

-- The overview page's initiative targets: TINL partner sets, De Werkplaats project spans.
CREATE TABLE tinl_partner_sets (
    partners   text[] NOT NULL,
    activities bigint NOT NULL,
    knowledge  bigint NOT NULL
);

CREATE FUNCTION count_partners() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    activity int := (TG_ARGV[0] = 'activity')::int;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO tinl_partner_sets VALUES (OLD.partners, -activity, activity - 1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO tinl_partner_sets VALUES (NEW.partners, activity, 1 - activity);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tinl_activities_partners AFTER INSERT OR UPDATE OF partners OR DELETE
    ON tinl_activities FOR EACH ROW EXECUTE FUNCTION count_partners('activity');
CREATE TRIGGER tinl_knowledge_partners AFTER INSERT OR UPDATE OF partners OR DELETE
    ON tinl_knowledge FOR EACH ROW EXECUTE FUNCTION count_partners('knowledge');

CREATE TABLE wp_portfolio (
    status text   NOT NULL,
    since  int    NOT NULL,   -- the year it was onboarded
    until  int,               -- the year it graduated or stopped; NULL while active
    n      bigint NOT NULL
);
-- The same spans per SDG a project serves: apart, so that neither table holds a row per set
-- of SDGs (upgrade_14.sql).
CREATE TABLE wp_sdgs (
    sdg   int    NOT NULL,
    since int    NOT NULL,
    until int,
    n     bigint NOT NULL
);

CREATE FUNCTION count_project() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER wp_projects_portfolio
    AFTER INSERT OR UPDATE OF status, onboarded_on, graduated_on, stopped_on, sdgs OR DELETE
    ON wp_projects FOR EACH ROW EXECUTE FUNCTION count_project();

-- Global Stars calls per day closed ('infinity': open) and whole months the call took from
-- its negotiation's start (months_taken; -1: not known), with their Dutch proposals: the
-- overview's Global Stars target (queries.globalstars_summary). A call counts once it has
-- an opening or negotiation date (a reading up to a date leaves out a call without either),
-- with the Dutch proposals it has then; `latest` bounds every date its rows count (never
-- lowered: a reading up to an earlier date counts the rows instead). A call and its
-- proposals share a Kafka key (call_id), so one consumer applies them in order: a trigger
-- on either side sees the other's rows (with two writers at once, neither would).
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

-- Folds what batches added since: the keys with delta rows (a long history's keys are not
-- read: per family and day, month, budget year and day spent, call's closing day); the
-- small tables (a row
-- per set or span, a delta row per row written) are folded whole: every row deleted, one
-- summed row per key written back, with no join,
-- so no plan can read a table once per row (folding only the keys with two rows joined the
-- table to its own grouping; planned on the statistics of a VACUUM that had just left a
-- few rows, the join re-grouped every row for every row: 275 ms against 4 for a second of
-- the bench's deltas). Two folds at once may each leave a folded row for one key; readers
-- sum the rows of a key. PL/pgSQL, so that a connection plans its statements once (a SQL
-- function plans them again on every call).
CREATE FUNCTION fold_totals() RETURNS void LANGUAGE plpgsql AS $$
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
