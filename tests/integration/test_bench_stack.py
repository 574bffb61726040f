"""A private bench stack is the bench's alone: it starts by removing what earlier runs left."""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.stack import BenchStack
from teamnl_shared.kafka import admin_client, delete_topics_containing, ensure_topics
from teamnl_suite.infra import Infrastructure
from teamnl_suite.infra.postgres import create_databases, database_names


async def _topics(bootstrap: str) -> set[str]:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_private_stack_deletes_the_topics_and_databases_earlier_runs_left(
    infra: Infrastructure, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A run killed before its clean-up left its topics; a broker recovers every log it holds
    when it restarts, and the fault run's broker, with 666 such partitions, was not back
    within 90 s. Another run's names go; this run's, and names no run owns, stay."""
    earlier, current = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    admin_url = infra.admin_database_url()
    left = [
        f"bench.{earlier}.teamnl.nlib.events",
        f"teamnl.deadletter.bench.{earlier}.iso-dashboard",
    ]
    unowned = f"test.bench.{uuid.uuid4().hex[:6]}.events"  # "bench." but no run's prefix
    await ensure_topics(kafka_bootstrap, [*left, unowned], partitions=1)
    await create_databases(admin_url, [f"bench_{earlier}_nlib", f"bench_{earlier}_dashboard"])
    stack = BenchStack(infra=infra, private=True, workdir=tmp_path, run_id=current)
    try:
        await stack._prepare()
        topics, databases = await _topics(kafka_bootstrap), await database_names(admin_url)
        assert not topics & set(left)
        assert unowned in topics
        assert set(stack.topics()) <= topics
        assert not {f"bench_{earlier}_nlib", f"bench_{earlier}_dashboard"} & databases
        assert stack.database("nlib") in databases
    finally:
        await stack._drop()
        await delete_topics_containing(kafka_bootstrap, unowned)


async def test_a_stack_on_shared_infrastructure_leaves_other_runs_alone(
    infra: Infrastructure, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``--infra shared``: another run's topics may be a colleague's run in progress."""
    other, current = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    theirs = f"bench.{other}.teamnl.nlib.events"
    await ensure_topics(kafka_bootstrap, [theirs], partitions=1)
    stack = BenchStack(infra=infra, private=False, workdir=tmp_path, run_id=current)
    try:
        await stack._prepare()
        assert theirs in await _topics(kafka_bootstrap)
    finally:
        await stack._drop()
        await delete_topics_containing(kafka_bootstrap, theirs)
