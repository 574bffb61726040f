-- Version 3 -> 4, in place, keeping every row: an event's identity is (source, id) within
-- its topic (or family), no longer the id alone or (source, id) across services.
-- Run with search_path set to the live schema, inside the caller's transaction.

ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (topic, event_source, event_id);

ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (family, source, event_id);

-- Version 3 kept one row per id, so each row's source is that of the event with its id.
ALTER TABLE activities ADD COLUMN source text;
UPDATE activities a SET source = e.source FROM events e
 WHERE e.event_id = a.event_id AND e.family = a.family;
UPDATE activities SET source = '' WHERE source IS NULL;
ALTER TABLE activities ALTER COLUMN source SET NOT NULL;
ALTER TABLE activities DROP CONSTRAINT activities_pkey;
ALTER TABLE activities ADD PRIMARY KEY (family, source, event_id);

ALTER TABLE nlib_companies_supported ADD COLUMN source text;
UPDATE nlib_companies_supported c SET source = e.source FROM events e
 WHERE e.event_id = c.event_id AND e.family = 'nlib';
UPDATE nlib_companies_supported SET source = '' WHERE source IS NULL;
ALTER TABLE nlib_companies_supported ALTER COLUMN source SET NOT NULL;
ALTER TABLE nlib_companies_supported DROP CONSTRAINT nlib_companies_supported_pkey;
ALTER TABLE nlib_companies_supported ADD PRIMARY KEY (source, event_id);

ALTER TABLE wp_milestones ADD COLUMN source text;
UPDATE wp_milestones m SET source = e.source FROM events e
 WHERE e.event_id = m.event_id AND e.family = 'werkplaats';
UPDATE wp_milestones SET source = '' WHERE source IS NULL;
ALTER TABLE wp_milestones ALTER COLUMN source SET NOT NULL;
ALTER TABLE wp_milestones DROP CONSTRAINT wp_milestones_pkey;
ALTER TABLE wp_milestones ADD PRIMARY KEY (source, event_id);

INSERT INTO projection_meta (version) VALUES (4);
