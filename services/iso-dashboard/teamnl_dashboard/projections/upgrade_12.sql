-- Version 11 -> 12, in place: an index on the item each conversion, proposal and milestone
-- belongs to. Every reading of an item's own (a mission's conversions for the rules and the
-- NLIB page, a call's proposals, a project's milestones) scanned the whole table once per
-- item: with 15,479 held missions and 154,836 conversions, the rules' facts about missions
-- took about 2 minutes, holding the rules' lock, while the consumers waited for it.
-- Run with search_path set to the live schema, inside the caller's transaction.

CREATE INDEX nlib_leads_converted_mission ON nlib_leads_converted (mission_id);
CREATE INDEX gs_proposals_call ON gs_proposals (call_id);
CREATE INDEX wp_milestones_project ON wp_milestones (project_id);

INSERT INTO projection_meta (version) VALUES (12);
