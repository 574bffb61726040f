-- De Werkplaats state: the portfolio of consortium projects.
CREATE TABLE projects (
    project_id         text PRIMARY KEY,
    title              text   NOT NULL,
    country            text   NOT NULL,
    sectors            text[] NOT NULL,
    sdgs               int[]  NOT NULL,
    consortium_members text[] NOT NULL,
    onboarded_on       date   NOT NULL,
    status             text   NOT NULL CHECK (status IN ('active', 'graduated', 'stopped')),
    milestones_reached int    NOT NULL DEFAULT 0,
    last_milestone     text,
    ended_on           date,
    stop_reason        text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_by_country ON projects (country);

CREATE TABLE project_milestones (
    project_id text NOT NULL REFERENCES projects,
    milestone  text NOT NULL,
    reached_on date NOT NULL,
    PRIMARY KEY (project_id, milestone)
);
