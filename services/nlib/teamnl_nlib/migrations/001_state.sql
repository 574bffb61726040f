-- NLinBusiness state: the current view of every aggregate, updated with the outbox row.
CREATE TABLE missions (
    mission_id           text PRIMARY KEY,
    title                text NOT NULL,
    direction            text NOT NULL,
    country              text NOT NULL,
    city                 text NOT NULL,
    city_of_opportunity  text,
    start_date           date NOT NULL,
    end_date             date NOT NULL,
    status               text NOT NULL CHECK (status IN ('planned', 'held')),
    companies            int,
    business_mixers      int,
    leads                int,
    followups            int NOT NULL DEFAULT 0,
    leads_converted      int NOT NULL DEFAULT 0,
    contract_value_cents bigint NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX missions_by_country ON missions (country);

CREATE TABLE mission_followups (
    followup_id  text PRIMARY KEY,
    mission_id   text NOT NULL REFERENCES missions,
    held_on      date NOT NULL,
    kind         text NOT NULL,
    companies    int  NOT NULL
);
CREATE INDEX mission_followups_by_mission ON mission_followups (mission_id);

CREATE TABLE leads (
    lead_id              text PRIMARY KEY,
    mission_id           text NOT NULL REFERENCES missions,
    company              text NOT NULL,
    contract_value_cents bigint NOT NULL,
    converted_on         date NOT NULL
);
CREATE INDEX leads_by_mission ON leads (mission_id);

CREATE TABLE cities (
    city_id      text PRIMARY KEY,
    city         text NOT NULL,
    country      text NOT NULL,
    tier         text NOT NULL,
    soft_landing text NOT NULL,
    updated_on   date NOT NULL
);

CREATE TABLE companies (
    company_id        text PRIMARY KEY,
    company           text NOT NULL,
    last_kind         text NOT NULL,
    last_country      text,
    supports          int  NOT NULL,
    last_supported_on date NOT NULL
);
