"""The shared producer (`kafka.idempotent_producer`, the outbox relay's and the inbox's
dead-letter producer): idempotent with acks=all, sending at once, a caller's options over
its own. The producer class is faked: only the options it is made with are read."""

from __future__ import annotations

from typing import Any

import pytest

from teamnl_shared import kafka


def test_the_shared_producer_is_idempotent_sends_at_once_and_takes_a_callers_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proves: every user of the shared producer gets ``linger_ms`` 0 (each awaits what it
    sent before sending more, so a linger only held each send back), acks=all and
    idempotence; an option a caller gives wins over the default."""
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka, "AIOKafkaProducer", lambda **options: made.append(options))

    kafka.idempotent_producer("kafka:9092")
    kafka.idempotent_producer("kafka:9092", linger_ms=5, max_request_size=9)

    default, given = made
    assert default["linger_ms"] == 0 and default["bootstrap_servers"] == "kafka:9092"
    assert default["enable_idempotence"] is True and default["acks"] == "all"
    assert given["linger_ms"] == 5 and given["max_request_size"] == 9
    assert given["enable_idempotence"] is True
