-- Version 10 -> 11, in place: the budget's running totals in numeric. The contract bounds
-- one spending (EUR 100 bn), not how many a partner sends: a year's sum passed a bigint
-- after about 922,000 maximal ones, and the fold then failed.
-- Run with search_path set to the live schema, inside the caller's transaction.

ALTER TABLE budget_totals ALTER COLUMN spent_cents TYPE numeric;

INSERT INTO projection_meta (version) VALUES (11);
