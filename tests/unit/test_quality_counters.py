"""Per-partner quality counters of the ingestion kit and the ``partner-quality`` rule,
without a database: what is counted where, what memory is bounded by, what a report says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from teamnl_dashboard.rules.catalogue import PartnerQuality
from teamnl_dashboard.rules.model import Facts, PartnerQualityFact
from teamnl_shared.contract.envelope import parse_kafka
from teamnl_shared.contract.ops import MAX_REJECTION_REASONS, PartnerQualityReported
from teamnl_shared.ingestion.quality import LATENESS_SAMPLES, OTHER_REASON, QualityCounters

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def counting(service: str) -> QualityCounters:
    return QualityCounters(service, window_start=NOW - timedelta(minutes=1))


def report_of(counters: QualityCounters, partner: str) -> PartnerQualityReported:
    [event] = [e for e in counters.take(NOW) if e.subject == partner]
    assert isinstance(event.data, PartnerQualityReported)
    return event.data


def test_each_answer_lands_in_its_own_count() -> None:
    counters = counting("nlib")
    for status, reason in [(202, ""), (202, ""), (200, ""), (409, "conflict")]:
        counters.count("rvo", status=status, reason=reason, now=NOW)
    counters.count("rvo", status=422, reason="invalid-event")
    counters.count("rvo", status=403, reason="forbidden")
    counters.count("rvo", status=422, reason="invalid-event")
    counters.parked("/partners/rvo")
    report = report_of(counters, "rvo")
    assert (report.accepted, report.replayed, report.conflicting, report.parked) == (2, 1, 1, 1)
    assert report.rejected == {"forbidden": 1, "invalid-event": 2}
    assert report.service == "nlib" and report.partner == "rvo"
    assert report.last_accepted_at == NOW


def test_the_service_s_own_trouble_is_not_the_partner_s_quality() -> None:
    counters = counting("nlib")
    counters.count("rvo", status=503, reason="unavailable")
    counters.count("rvo", status=429, reason="rate-limited")
    counters.parked("/teamnl/nlib/quality")  # a report of our own, no partner's event
    assert counters.take(NOW) == []


def test_lateness_is_acceptance_minus_the_event_time_and_never_negative() -> None:
    counters = counting("tinl")
    for seconds in (10, 20, 3600):
        counters.count("kvk", status=202, event_time=NOW - timedelta(seconds=seconds), now=NOW)
    counters.count("kvk", status=202, event_time=NOW + timedelta(hours=1), now=NOW)
    report = report_of(counters, "kvk")
    assert report.lateness_samples == 4
    assert report.lateness_p50_seconds == 15.0  # median of 0, 10, 20, 3600
    assert report.lateness_max_seconds == 3600.0


def test_memory_is_bounded_per_partner_and_window() -> None:
    counters = counting("nlib")
    for n in range(LATENESS_SAMPLES * 3):
        counters.count("rvo", status=202, event_time=NOW - timedelta(seconds=n), now=NOW)
    for n in range(MAX_REJECTION_REASONS * 2):
        counters.count("rvo", status=422, reason=f"reason-{n}")
    window = counters.partners["rvo"]
    assert len(window.lateness) == LATENESS_SAMPLES
    assert len(window.rejected) == MAX_REJECTION_REASONS
    report = report_of(counters, "rvo")
    assert report.lateness_samples == LATENESS_SAMPLES * 3
    assert report.lateness_max_seconds == LATENESS_SAMPLES * 3 - 1  # exact, not sampled
    assert sum(report.rejected.values()) == MAX_REJECTION_REASONS * 2
    assert report.rejected[OTHER_REASON] == MAX_REJECTION_REASONS + 1


def test_a_clock_stepped_back_gives_an_empty_window_not_a_crash() -> None:
    counters = counting("nlib")
    counters.count("rvo", status=202, now=NOW)
    [event] = counters.take(NOW - timedelta(hours=1))
    assert event.data.window_end == event.data.window_start  # type: ignore[attr-defined]


def test_take_reports_the_window_once_and_starts_a_new_one() -> None:
    counters = counting("nlib")
    start = counters.window_start
    counters.count("rvo", status=202, now=NOW)
    counters.count("kvk", status=422, reason="invalid-event")
    first = counters.take(NOW)
    assert [e.subject for e in first] == ["kvk", "rvo"]
    assert len({e.id for e in first}) == 2
    assert all(
        e.data.window_start == start and e.data.window_end == NOW  # type: ignore[attr-defined]
        for e in first
    )
    assert counters.take(NOW + timedelta(minutes=1)) == []
    counters.count("rvo", status=202, now=NOW)
    [second] = counters.take(NOW + timedelta(minutes=2))
    assert second.id not in {e.id for e in first}


def test_a_report_travels_as_a_valid_cloudevent() -> None:
    counters = counting("werkplaats")
    counters.count("rvo", status=202, event_time=NOW - timedelta(seconds=5), now=NOW)
    [event] = counters.take(NOW)
    assert event.type == PartnerQualityReported.TYPE
    assert event.topic == "teamnl.ops.events"
    assert event.key == "rvo"
    assert parse_kafka(event.to_kafka_headers(), event.data_json()) == event


HOUR = timedelta(hours=1)


def fact(partner: str, *hourly: tuple[timedelta, int, int], last: datetime | None = NOW) -> Facts:
    rows = tuple((NOW - ago, events, refused) for ago, events, refused in hourly)
    return Facts(partner_quality=(PartnerQualityFact(partner, "nlib", last, rows),))


@pytest.mark.parametrize(
    ("hourly", "raised"),
    [
        (((HOUR * 0, 10, 2),), False),  # 20 % refused, below 25 %
        (((HOUR * 0, 10, 3),), True),  # 30 %
        (((HOUR * 0, 3, 3),), False),  # too few events to judge
        (((HOUR * 30, 10, 10), (HOUR * 0, 10, 0)), False),  # the bad hour left the window
        (((HOUR * 2, 5, 5), (HOUR * 0, 5, 0)), True),  # 50 % over the window
    ],
)
def test_the_rule_flags_a_refused_share_over_the_threshold(
    hourly: tuple[tuple[timedelta, int, int], ...], raised: bool
) -> None:
    rule = PartnerQuality(refused_share=0.25, window_hours=24, min_events=5, silent_days=7)
    hits = rule.check(fact("rvo", *hourly), NOW)
    assert [h.key for h in hits] == (["nlib/rvo/refused"] if raised else [])


def test_the_rule_flags_a_partner_silent_too_long() -> None:
    rule = PartnerQuality(silent_days=7)
    assert rule.check(fact("rvo", last=NOW - timedelta(days=6)), NOW) == []
    assert rule.check(fact("rvo", last=None), NOW) == []  # never accepted: not silent
    [hit] = rule.check(fact("rvo", last=NOW - timedelta(days=8)), NOW)
    assert hit.key == "nlib/rvo/silent"
