-- A mission's contract value is the running sum of its leads converted: numeric, since the
-- contract bounds one conversion (EUR 100 bn), not how many a mission has, and a bigint sum
-- overflowed after about 922,000 maximal ones (the next lead's transaction failed).
ALTER TABLE missions ALTER COLUMN contract_value_cents TYPE numeric;
