"""Runs the rules: as events arrive (in the consumer's transaction) and on a schedule.

As events arrive means once per consumed batch: the consumer applies a batch's projections,
then evaluates each rule any of its events triggers once, before the batch commits.

Evaluations are serialised with a transaction-level advisory lock, so two dashboard
instances applying related events at once (an NLIB mission here, a TINL activity there)
never both miss each other: the second evaluates after the first has committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from teamnl_shared.contract.envelope import Event
from teamnl_shared.db import transaction

from ..period import end_of_day
from .catalogue import Rule, ScopedRule, operational
from .facts import FactContext, load_facts
from .findings import reconcile
from .model import Hit, Scope
from .score import (
    Score,
    coherence_score,
    complementary_links,
    open_findings_by_severity,
    store_snapshot,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RULES_LOCK = 7_310_102


def system_clock() -> datetime:
    return datetime.now(UTC)


class RulesEngine:
    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        allocations_cents: Mapping[str, int],
        duplication_window_days: int,
        clock: Clock = system_clock,
    ) -> None:
        self.rules = list(rules)
        self.clock = clock
        self._allocations = dict(allocations_cents)
        self._window = duplication_window_days
        self._by_trigger: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for event_type in rule.triggers:
                self._by_trigger.setdefault(event_type, []).append(rule)

    def rule(self, name: str) -> Rule:
        return next(rule for rule in self.rules if rule.name == name)

    @property
    def scheduled(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.scheduled]

    def triggered_by(self, event_types: Iterable[str]) -> list[Rule]:
        """The rules any of `event_types` triggers, each once, in catalogue order."""
        names = {rule.name for t in set(event_types) for rule in self._by_trigger.get(t, ())}
        return [rule for rule in self.rules if rule.name in names]

    async def on_events(self, conn: asyncpg.Connection, events: Iterable[Event]) -> int:
        """Evaluate the rules `events` trigger, each once, in the caller's transaction; a
        scoped rule judges only what these events can have changed."""
        events = list(events)
        rules = self.triggered_by(event.type for event in events)
        whole = [rule for rule in rules if not isinstance(rule, ScopedRule)]
        changed = await self.evaluate(conn, whole) if whole else 0
        for rule in rules:
            if isinstance(rule, ScopedRule):
                changed += await self.evaluate(conn, [rule], rule.scope(events))
        return changed

    async def evaluate(
        self, conn: asyncpg.Connection, rules: Iterable[Rule], scope: Scope | None = None
    ) -> int:
        """Evaluate `rules` now (only within `scope` when given: scoped rules only);
        returns how many findings changed."""
        rules = list(rules)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        now = self.clock()
        facts = await load_facts(
            conn, {n for r in rules for n in r.needs}, FactContext(now, self._allocations, scope)
        )
        changed = 0
        for rule in rules:
            within = rule.judged(facts) if scope is not None else None  # type: ignore[attr-defined]
            changed += await reconcile(
                conn, rule.name, rule.version, rule.check(facts, now), now, within
            )
        await conn.execute("SELECT fold_finding_totals()")
        return changed

    async def tick(self, pool: asyncpg.Pool) -> int:
        """One scheduled run: the time-based rules, then a coherence score snapshot."""
        async with transaction(pool) as conn:
            changed = await self.evaluate(conn, self.scheduled)
            await self.snapshot_score(conn)
        return changed

    async def evaluate_all(self, pool: asyncpg.Pool) -> int:
        async with transaction(pool) as conn:
            changed = await self.evaluate(conn, self.rules)
            await self.snapshot_score(conn)
        return changed

    async def snapshot_score(self, conn: asyncpg.Connection) -> None:
        now = self.clock()
        facts = await load_facts(conn, {"paired_activities"}, FactContext(now, self._allocations))
        score = coherence_score(
            facts.paired_activities,
            await open_findings_by_severity(conn),
            now,
            self._window,
            await complementary_links(conn, now),
        )
        await store_snapshot(conn, now, score)

    async def read_as_of(self, conn: asyncpg.Connection, as_of: date) -> AsOf:
        """What the rules about the network see at the end of `as_of`, from the facts known
        then, and the coherence score it gives; nothing is stored. Rules about the running
        system (a silent service, failed validation) say nothing about a past date."""
        now = end_of_day(as_of)
        rules = [rule for rule in self.rules if not operational(rule)]
        facts = await load_facts(
            conn,
            {"paired_activities", *(n for r in rules for n in r.needs)},
            FactContext(now, self._allocations, None, as_of),
        )
        hits = [(rule, hit) for rule in rules for hit in rule.check(facts, now)]
        by_severity = Counter(hit.severity.value for _, hit in hits)
        score = coherence_score(
            facts.paired_activities,
            by_severity,
            now,
            self._window,
            await complementary_links(conn, now),
        )
        return AsOf(as_of, hits, score)


@dataclass(frozen=True)
class AsOf:
    """A reading of the rules as of a date: every hit with its rule, and the score."""

    as_of: date
    hits: list[tuple[Rule, Hit]]
    score: Score
