"""Waiting for a starting broker expects its port to refuse a while: aiokafka's error line
for each refusal is not printed (``make run`` showed a dozen before every start), and a wait
that gives up still says so itself."""

from __future__ import annotations

import logging

import pytest

from teamnl_suite.infra.kafka import KafkaError, wait_ready
from tests.support import free_port


def test_refused_connections_while_waiting_are_not_logged_as_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aiokafka = logging.getLogger("aiokafka")
    caplog.set_level(logging.INFO, logger="aiokafka")
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: every attempt is refused

    with pytest.raises(KafkaError, match=f"Kafka at {closed} not ready after 2s"):
        wait_ready(closed, timeout=1.5, log_tail=lambda: "the broker's last lines")

    assert not [r for r in caplog.records if r.name.startswith("aiokafka")]
    assert aiokafka.level == logging.INFO  # as it was: later refusals are errors again
