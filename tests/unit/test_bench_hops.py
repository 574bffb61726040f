"""The bench's Kafka observer (figure 3's hops): what each record carried, and the time
each hop took from it."""

from __future__ import annotations

from types import SimpleNamespace

from bench.hops import ACCEPTED_AT_HEADER, KafkaObserver, breakdown


def test_a_record_gives_its_send_its_reading_and_the_time_it_was_accepted() -> None:
    observer = KafkaObserver("127.0.0.1:1", [])
    record = SimpleNamespace(
        timestamp=1_000_500,  # ms: the relay sent it at 1,000.5 s
        headers=[
            ("ce_type", b"nlib.mission.held"),
            ("ce_id", b"e-1"),
            (ACCEPTED_AT_HEADER, b"1970-01-01T00:16:40.200000+00:00"),  # 1,000.2 s
        ],
    )
    observer._note(record, readable=1_000.6)
    observer._note(SimpleNamespace(timestamp=0, headers=[("ce_type", b"x")]), readable=0)
    assert list(observer.seen) == ["e-1"]
    acks = [("nlib", "e-1", 202, 1_000.25)]
    hops = breakdown(acks, observer.seen, {"e-1": 1_000.9}, {"e-1": 1_001.0})
    expected = {
        "outbox commit (handler accepted -> 202)": 50,
        "202 -> relay publish": 250,
        "broker append + consumer fetch (relay send -> readable)": 100,
        "projection commit (readable -> committed)": 300,
        "push (committed -> in the browser's stream)": 100,
    }
    assert {name: round(hops[name]["p50"]) for name in expected} == expected
