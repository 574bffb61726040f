"""The bench's fast loader dates part of the dashboard's events a year back (a history)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from bench.kafka_io import loaded_events

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_one_event_in_n_is_dated_a_year_earlier_across_every_service() -> None:
    loaded = list(loaded_events("r", 60, history_every=10, now=NOW))
    past = [e for e in loaded if e.time.startswith("2025-12-01")]
    assert len(loaded) == 60 and len({e.id for e in loaded}) == 60
    assert [loaded.index(e) for e in past] == [9, 19, 29, 39, 49, 59]
    assert Counter(e.service for e in past) == {"nlib": 2, "tinl": 2, "werkplaats": 2}
    assert all(e.time.startswith("2026-12-01") for e in loaded if e not in past)


def test_without_a_history_every_event_is_dated_now() -> None:
    assert {e.time[:10] for e in loaded_events("r", 30, now=NOW)} == {"2026-12-01"}


def test_each_event_is_dated_when_it_is_made() -> None:
    times = [e.time for e in loaded_events("r", 2_000)]
    assert len(set(times)) > 1 and times == sorted(times)
