"""The dashboard consumer folds the running totals at most once per `totals_fold_seconds`."""

from __future__ import annotations

from typing import Any

from teamnl_dashboard.consumer import DashboardHandlers


class _Conn:
    """Records the statements sent (the database is an edge here)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute(self, query: str, *args: Any) -> str:
        self.statements.append(query)
        return "SELECT 1"


class _Engine:
    def __init__(self) -> None:
        self.queued = 0

    async def queue(self, conn: Any, events: Any) -> None:
        self.queued += 1


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _handlers(fold_seconds: float, clock: _Clock, engine: _Engine) -> DashboardHandlers:
    return DashboardHandlers(
        pool=None,  # type: ignore[arg-type]  # not used by before_commit
        engine=engine,  # type: ignore[arg-type]
        fold_seconds=fold_seconds,
        clock=clock,
    )


async def test_the_totals_are_folded_at_most_once_per_interval_and_the_rules_every_batch() -> None:
    """Proves: the first batch folds, batches within the interval do not, the first batch
    after it does again; every batch queues what it owes the rules."""
    clock, engine, conn = _Clock(), _Engine(), _Conn()
    handlers = _handlers(1.0, clock, engine)
    folds = []
    for step in (0.0, 0.3, 0.6, 0.5, 0.2, 1.5):
        clock.now += step
        await handlers.before_commit(conn, [])  # type: ignore[arg-type]
        folds.append(conn.statements.count("SELECT fold_totals()"))
    assert folds == [1, 1, 1, 2, 2, 3]
    assert engine.queued == 6


async def test_with_no_interval_every_batch_folds() -> None:
    """Proves: `totals_fold_seconds=0` folds after every fetch (the old behaviour)."""
    clock, engine, conn = _Clock(), _Engine(), _Conn()
    handlers = _handlers(0.0, clock, engine)
    for _ in range(3):
        await handlers.before_commit(conn, [])  # type: ignore[arg-type]
    assert conn.statements.count("SELECT fold_totals()") == 3
