-- Trade & Innovate NL state, and the Global Stars calls TINL runs for EZK.
CREATE TABLE activities (
    activity_id text PRIMARY KEY,
    title       text   NOT NULL,
    kind        text   NOT NULL,
    market      text   NOT NULL,
    country     text   NOT NULL,
    city        text   NOT NULL,
    start_date  date   NOT NULL,
    end_date    date   NOT NULL,
    partners    text[] NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_by_market ON activities (market);

CREATE TABLE knowledge_sharings (
    knowledge_id text PRIMARY KEY,
    topic        text   NOT NULL,
    partners     text[] NOT NULL,
    shared_on    date   NOT NULL
);

CREATE TABLE calls (
    call_id                   text PRIMARY KEY,
    country                   text NOT NULL,
    theme                     text NOT NULL,
    negotiation_started_on    date NOT NULL,
    opened_on                 date NOT NULL,
    status                    text NOT NULL CHECK (status IN ('open', 'closed')),
    closed_on                 date,
    dutch_proposals           int,          -- as reported when the call closed
    proposals_submitted       int  NOT NULL DEFAULT 0,
    dutch_proposals_submitted int  NOT NULL DEFAULT 0
);

CREATE TABLE proposals (
    proposal_id       text PRIMARY KEY,
    call_id           text    NOT NULL REFERENCES calls,
    lead_organisation text    NOT NULL,
    dutch             boolean NOT NULL,
    submitted_on      date    NOT NULL
);
CREATE INDEX proposals_by_call ON proposals (call_id);
