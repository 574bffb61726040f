-- Open findings per severity without counting the findings table: a trigger appends a
-- delta row per change (no hot row, no lock shared between writers); the rules engine folds
-- them once per evaluation (`fold_finding_totals()`). Readers sum the rows.
CREATE TABLE finding_totals (
    severity text   NOT NULL,
    open     bigint NOT NULL
);
INSERT INTO finding_totals
SELECT severity, count(*) FROM findings WHERE state <> 'resolved' GROUP BY severity;

CREATE FUNCTION count_open_finding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state <> 'resolved' THEN
        INSERT INTO finding_totals VALUES (OLD.severity, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state <> 'resolved' THEN
        INSERT INTO finding_totals VALUES (NEW.severity, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER findings_open_total AFTER INSERT OR UPDATE OF state, severity OR DELETE
    ON findings FOR EACH ROW EXECUTE FUNCTION count_open_finding();

CREATE FUNCTION fold_finding_totals() RETURNS void LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM finding_totals RETURNING *)
    INSERT INTO finding_totals SELECT severity, sum(open) FROM gone GROUP BY severity;
$$;

-- the findings lists page by (raised_at, id): many findings raised at one instant
DROP INDEX findings_state;
CREATE INDEX findings_state ON findings (state, raised_at DESC, id DESC);
CREATE INDEX findings_recent ON findings (raised_at DESC, id DESC);
