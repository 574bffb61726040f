-- The fold of the open findings' totals in PL/pgSQL, so that a connection plans its
-- statement once; as a SQL function it was planned again on every evaluation.
CREATE OR REPLACE FUNCTION fold_finding_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (DELETE FROM finding_totals RETURNING *)
    INSERT INTO finding_totals SELECT severity, sum(open) FROM gone GROUP BY severity;
END $$;
