-- The dashboard's projections. Applied to a schema of their own (search_path set by the
-- caller): `proj` is the live one, a rebuild fills `proj_rebuild_<n>` and swaps it in.
-- A change here bumps PROJECTION_VERSION (projections/schema.py) and needs a rebuild.

CREATE TABLE projection_meta (
    version     int         NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);

-- Idempotent consumer bookkeeping (same shape as teamnl_shared's inbox), per schema so
-- that a rebuild has its own.
CREATE TABLE inbox (
    event_source    text        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_source, event_id)
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
CREATE TABLE events (
    event_id    text        NOT NULL,
    source      text        NOT NULL,
    type        text        NOT NULL,
    family      text        NOT NULL,
    subject     text        NOT NULL,
    time        timestamptz NOT NULL,
    title       text        NOT NULL,   -- data.title or a label per type (titles.py)
    PRIMARY KEY (source, event_id)
);
CREATE INDEX events_family_time ON events (family, time);
CREATE INDEX events_time ON events (time DESC);

CREATE TABLE activities (
    event_id    text        PRIMARY KEY,
    family      text        NOT NULL,
    kind        text        NOT NULL,   -- mission, followup, event, fair, onboarding, call ...
    market      text,                   -- country code or 'smart-cities'
    country     text,
    city        text,
    on_date     date        NOT NULL
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
    event_id     text PRIMARY KEY,
    company_id   text NOT NULL,
    kind         text NOT NULL,
    country      text,
    supported_on date NOT NULL
);

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

CREATE TABLE tinl_knowledge (
    knowledge_id text   PRIMARY KEY,
    topic        text   NOT NULL,
    partners     text[] NOT NULL,
    shared_on    date   NOT NULL,
    event_id     text   NOT NULL
);

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

CREATE TABLE wp_members (
    project_id text NOT NULL,
    member     text NOT NULL,
    joined_on  date,
    PRIMARY KEY (project_id, member)
);

CREATE TABLE wp_milestones (
    event_id   text PRIMARY KEY,
    project_id text NOT NULL,
    milestone  text NOT NULL,
    reached_on date NOT NULL
);
