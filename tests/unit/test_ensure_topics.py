"""Topic creation returns only once the broker's metadata shows the topics, and says which
topic the broker refused and why. The admin client is faked: a real single broker catches up
too fast to show the wait reliably (the refusal is also checked on a real broker, in
tests/integration/test_topics_kept.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import InvalidPartitionsError

from teamnl_shared import kafka


class Admin:
    """Answers CreateTopics with `codes`, then describes each topic as unknown, then without
    a leader, then led, one step per describe."""

    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.codes = codes or {}
        self.describes = 0
        self.closed = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    async def list_topics(self) -> list[str]:
        return ["there.already"]

    async def create_topics(self, new_topics: list[Any]) -> Any:
        errors = [(t.name, self.codes.get(t.name, 0), None) for t in new_topics]
        return type("Response", (), {"topic_errors": errors})()

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.describes += 1
        if self.describes == 1:
            return [{"topic": t, "error_code": 3, "partitions": []} for t in topics]
        leader = -1 if self.describes == 2 else 1
        partitions = [{"partition": 0, "leader": 1}, {"partition": 1, "leader": leader}]
        return [{"topic": t, "error_code": 0, "partitions": partitions} for t in topics]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> Admin:
    fake = Admin()
    monkeypatch.setattr(kafka, "admin_client", lambda bootstrap: fake)
    return fake


async def test_created_topics_are_waited_for_until_every_partition_has_a_leader(
    admin: Admin,
) -> None:
    await kafka.ensure_topics("b", ["there.already", "new.one", "new.two"], partitions=2)
    assert admin.describes == 3
    assert admin.closed


async def test_topics_that_already_exist_are_not_waited_for(admin: Admin) -> None:
    await kafka.ensure_topics("b", ["there.already"])
    assert admin.describes == 0


async def test_a_topic_another_instance_created_first_is_waited_for_too(admin: Admin) -> None:
    admin.codes = {"new.one": 36}  # TOPIC_ALREADY_EXISTS
    await kafka.ensure_topics("b", ["new.one"])
    assert admin.describes == 3


async def test_a_topic_the_broker_refuses_raises_naming_it_and_the_reason(admin: Admin) -> None:
    admin.codes = {"new.two": 37}  # INVALID_PARTITIONS
    with pytest.raises(InvalidPartitionsError, match="'new.two'.*partitions is invalid"):
        await kafka.ensure_topics("b", ["new.one", "new.two"])
    assert admin.describes == 0
    assert admin.closed


async def test_a_topic_never_shown_ends_in_a_timeout_naming_it(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unknown(topics: list[str]) -> list[dict[str, Any]]:
        return [{"topic": t, "error_code": 3, "partitions": []} for t in topics]

    monkeypatch.setattr(admin, "describe_topics", unknown)
    with pytest.raises(TimeoutError, match="new.one"):
        await kafka.ensure_topics("b", ["new.one"], timeout=0.2)
