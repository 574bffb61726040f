-- Version 4 -> 5, in place: the date indexes the rules walk for each TINL partner's latest
-- participation (rules/facts.py), and the one that tells whether the running budget totals
-- answer a reading as of a date (queries.budget). Run with search_path set to the live
-- schema, inside the caller's transaction.

CREATE INDEX IF NOT EXISTS tinl_activities_latest ON tinl_activities (end_date DESC, event_id);
CREATE INDEX IF NOT EXISTS tinl_knowledge_latest ON tinl_knowledge (shared_on DESC, event_id);
CREATE INDEX IF NOT EXISTS budget_spent_on ON budget_spent (spent_on);

INSERT INTO projection_meta (version) VALUES (5);
