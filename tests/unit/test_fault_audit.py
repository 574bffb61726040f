"""The fault run's audit of additive projections (bench/faults.py): the totals recomputed
from the events, and the comparison that reports wrong sums."""

from __future__ import annotations

import json

from bench import events
from bench.faults import expected_sums, wrong_sums

BUDGET = "nl.teamnl.nlib.budget.spent.v1"


def kafka_events(count: int) -> list[tuple[str, bytes]]:
    made = [events.make_event(s, "f", i) for i in range(count) for s in events.SERVICES]
    return [(e.type, json.dumps(e.data).encode()) for e in made]


def test_budget_sums_add_each_distinct_spend_once() -> None:
    spends = [e for e in kafka_events(9) if e[0] == BUDGET]
    amounts = [json.loads(value)["amount_cents"] for _, value in spends]
    assert len(set(amounts)) == len(amounts) > 1, "amounts differ, so a sum error shows"
    assert expected_sums(spends)["budget_totals"] == {("nlib", 2019): (len(spends), sum(amounts))}


def test_the_same_totals_are_not_wrong() -> None:
    expected = expected_sums(kafka_events(12))
    assert wrong_sums(expected, {k: dict(v) for k, v in expected.items()}) == []


def test_a_spend_counted_twice_a_missing_family_and_an_extra_key_are_wrong_sums() -> None:
    expected = expected_sums(kafka_events(12))
    actual = {k: dict(v) for k, v in expected.items()}
    (key, (spends, cents)), *_ = actual["budget_totals"].items()
    actual["budget_totals"][key] = (spends + 1, cents + 100)  # one spend applied twice
    del actual["family_totals.events"]["tinl"]
    actual["wp_portfolio.n"]["nlib"] = (1,)
    wrong = wrong_sums(expected, actual)
    assert len(wrong) == 3, wrong
    assert any(w.startswith(f"budget_totals[{key}]") for w in wrong)
