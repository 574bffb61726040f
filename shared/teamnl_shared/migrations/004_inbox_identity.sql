-- An event's identity is (source, id) within the topic it came from: one partner may send
-- the same id to two services, and a consumer of both topics applies both. Keeps every row.
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (topic, event_source, event_id);
