-- The live findings of a rule about given countries (their details' "country"): the
-- isolated-project rule judges, in a country where the network is active, only the
-- projects holding one (teamnl_dashboard.rules.findings.live_keys_in).
CREATE INDEX findings_live_country ON findings (rule, (details ->> 'country')) WHERE condition_holds;
