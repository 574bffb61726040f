-- Every family has a budget.spent.v1 event; its state is the same in each service.
CREATE TABLE budget_spendings (
    spending_id  text PRIMARY KEY,   -- '<family>:<spend_id>'
    family       text   NOT NULL,
    spend_id     text   NOT NULL,
    year         int    NOT NULL,
    amount_cents bigint NOT NULL,
    category     text   NOT NULL,
    spent_on     date   NOT NULL
);
CREATE INDEX budget_spendings_by_year ON budget_spendings (family, year);
