"""Runs the rules: as events arrive and on a schedule.

As events arrive: the consumer records, in the transaction that projects a fetch, what its
events owe - each rule they trigger, and for a scoped rule what they can have changed
(:meth:`RulesEngine.queue`, a ``rules_pending`` row); the rules worker (`pending`) works
that off in its own transactions (:meth:`RulesEngine.work_off`), every owed rule once for
all the fetches queued since. So the rules, whose cost grows with the projections, stay off
the consumer's commit path, and an evaluation is owed and done exactly once in effect.

Evaluations are serialised with a transaction-level advisory lock, so two dashboard
instances evaluating related events at once (an NLIB mission here, a TINL activity there)
never both miss each other: the second evaluates after the first has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
from collections import Counter, deque
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from teamnl_shared.contract.envelope import Event
from teamnl_shared.db import transaction

from ..live import notify
from ..period import end_of_day
from .catalogue import (
    InvalidEvents,
    MarketDuplication,
    Rule,
    ScopedRule,
    daily,
    is_scoped,
    operational,
)
from .facts import (
    FactContext,
    load_facts,
    scoped_known_on,
    scoped_parts,
    stale_keys,
)
from .findings import Content, Growth, live_findings, live_keys_in, reconcile
from .model import PROJECTS, Facts, Hit, Scope
from .score import (
    Score,
    coherence_score,
    complementary_links,
    open_findings_by_severity,
    store_snapshot,
)

log = logging.getLogger(__name__)
_TRACER = trace.get_tracer("teamnl.dashboard.rules")

Clock = Callable[[], datetime]
RULES_LOCK = 7_310_102
WORK_OFF_ROWS = 1000
"""Queued fetches one evaluation of the rules works off at most."""
PART_SIZE = 2000
"""Projects a scoped rule judges at a time (its facts, hits and findings in memory)."""
READ_AHEAD = 2
"""Connections of its own on which an evaluation of every rule reads a scoped rule's next
parts (:meth:`RulesEngine._parts`); a third gained nothing."""
Part = tuple[Facts, set[str], dict[str, Content]]
"""A part of a scoped rule's subject: its own facts, the keys it judges, their live
findings."""


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
        self._pair_window = max(
            [duplication_window_days]
            + [r.overlap_window_days for r in self.rules if isinstance(r, MarketDuplication)]
        )
        """The days within which activities pair for the score and the duplication rule."""
        self._dead_letter_days = max(
            (r.deadletter_window_days for r in self.rules if isinstance(r, InvalidEvents)),
            default=None,
        )
        """The days back within which dead letters count (the ``invalid-events`` rule's)."""
        self._by_trigger: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for event_type in rule.triggers:
                self._by_trigger.setdefault(event_type, []).append(rule)

    def _context(
        self, now: datetime, scope: Scope | None = None, as_of: date | None = None
    ) -> FactContext:
        return FactContext(
            now, self._allocations, scope, as_of, self._pair_window, self._dead_letter_days
        )

    def rule(self, name: str) -> Rule:
        return next(rule for rule in self.rules if rule.name == name)

    @property
    def scheduled(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.scheduled]

    def triggered_by(self, event_types: Iterable[str]) -> list[Rule]:
        """The rules any of `event_types` triggers, each once, in catalogue order."""
        names = {rule.name for t in set(event_types) for rule in self._by_trigger.get(t, ())}
        return [rule for rule in self.rules if rule.name in names]

    def owed(self, events: Iterable[Event]) -> Owed:
        """The evaluations `events` owe: each rule they trigger once, a scoped rule only
        for what they can have changed."""
        events = list(events)
        rules = self.triggered_by(event.type for event in events)
        return Owed(
            frozenset(rule.name for rule in rules if not is_scoped(rule)),
            {
                rule.name: rule.scope([e for e in events if e.type in rule.triggers])
                for rule in rules
                if is_scoped(rule)
            },
        )

    async def queue(self, conn: asyncpg.Connection, events: Iterable[Event]) -> bool:
        """Record what `events` owe, in the caller's (the projecting) transaction; False
        when they trigger no rule."""
        return await self._owe(conn, self.owed(events))

    async def queue_rule(self, conn: asyncpg.Connection, name: str) -> None:
        """Record that rule `name` owes an evaluation, in the caller's transaction."""
        await self._owe(conn, Owed(frozenset({name})))

    async def _owe(self, conn: asyncpg.Connection, owed: Owed) -> bool:
        """Record `owed` for the rules worker (:meth:`work_off`), in the caller's
        transaction; False when it is nothing."""
        if not owed:
            return False
        await conn.execute(
            "INSERT INTO rules_pending (rules, scoped) VALUES ($1, $2::jsonb)",
            sorted(owed.whole),
            json.dumps({name: scope.as_json() for name, scope in sorted(owed.scoped.items())}),
        )
        return True

    async def work_off(self, pool: asyncpg.Pool, limit: int = WORK_OFF_ROWS) -> int:
        """Evaluate what the oldest `limit` queued fetches owe, once for all of them, in
        the transaction that deletes them; returns how many were worked off (0: none
        queued)."""
        async with transaction(pool) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
            rows = await conn.fetch(
                "DELETE FROM rules_pending WHERE id IN"
                " (SELECT id FROM rules_pending ORDER BY id LIMIT $1) RETURNING rules, scoped",
                limit,
            )
            if rows:
                # One trace per evaluation, its queries inside (a query outside any span
                # is not traced, see teamnl_shared.telemetry.routing).
                with _TRACER.start_as_current_span(
                    "rules evaluation", attributes={"teamnl.rules.fetches": len(rows)}
                ):
                    await self.evaluate_owed(conn, Owed.merged(rows))
        return len(rows)

    async def evaluate_owed(self, conn: asyncpg.Connection, owed: Owed) -> int:
        """Evaluate what is `owed` in the caller's transaction; returns how many findings
        changed."""
        known = {rule.name: rule for rule in self.rules}
        whole = [known[name] for name in sorted(owed.whole) if name in known]
        grown = await _locked(conn)
        now = self.clock()
        changed = await self._judge(conn, grown, whole, None, now, ())
        for name, scope in sorted(owed.scoped.items()):
            if name in known:
                changed += await self._judge(conn, grown, [known[name]], scope, now, ())
        await conn.execute("SELECT fold_finding_totals()")  # once for every rule judged
        return changed

    async def evaluate(
        self,
        conn: asyncpg.Connection,
        rules: Iterable[Rule],
        scope: Scope | None = None,
        *,
        readers: Sequence[asyncpg.Connection] = (),
    ) -> int:
        """Evaluate `rules` now (only within `scope` when given: scoped rules only);
        returns how many findings changed. `readers`: connections that read a scoped
        rule's next parts meanwhile (:meth:`_parts`)."""
        grown = await _locked(conn)
        changed = await self._judge(conn, grown, list(rules), scope, self.clock(), readers)
        await conn.execute("SELECT fold_finding_totals()")
        return changed

    async def _judge(
        self,
        conn: asyncpg.Connection,
        grown: Growth,
        rules: list[Rule],
        scope: Scope | None,
        now: datetime,
        readers: Sequence[asyncpg.Connection],
    ) -> int:
        """:meth:`evaluate`'s judging, under the caller's lock, its finding totals left to
        fold."""
        whole = [rule for rule in rules if not is_scoped(rule)]
        changed = 0
        if whole:
            facts = await load_facts(conn, {n for r in whole for n in r.needs}, self._context(now))
            for rule in whole:
                hits = rule.check(facts, now)
                changed += await reconcile(conn, rule.name, rule.version, hits, now, grown=grown)
        for rule in rules:
            if is_scoped(rule):
                changed += await self._in_parts(conn, grown, rule, scope, now, readers)
        return changed

    async def _in_parts(
        self,
        conn: asyncpg.Connection,
        grown: Growth,
        rule: ScopedRule,
        scope: Scope | None,
        now: datetime,
        readers: Sequence[asyncpg.Connection],
    ) -> int:
        """Judge a scoped rule's subject (what `scope` names; None: all) `PART_SIZE` at a
        time, so that what one evaluation holds is bounded by that, not by the portfolio;
        a whole evaluation also ends the findings of keys no longer there."""
        subject = rule.subject
        shared = await load_facts(conn, rule.needs - {subject.fact}, self._context(now))
        if scope is not None:
            scope = await self._narrowed(conn, rule, shared, scope, now)
            if not scope:
                return 0
        changed = 0
        async with contextlib.aclosing(self._parts(conn, readers, rule, scope, now)) as parts:
            async for own, judged, live in parts:
                hits = rule.check(with_part(shared, own, rule), now)
                changed += await reconcile(
                    conn, rule.name, rule.version, hits, now, judged, live, grown=grown
                )
        if scope is None and (stale := await stale_keys(conn, rule.name, subject)):
            changed += await reconcile(
                conn, rule.name, rule.version, [], now, set(stale), grown=grown
            )
        return changed

    async def _narrowed(
        self,
        conn: asyncpg.Connection,
        rule: ScopedRule,
        shared: Facts,
        scope: Scope,
        now: datetime,
    ) -> Scope:
        """`scope` less its countries where `rule` has settled (``settled``, when it has
        one: where it sees no hit at all, as the isolated-project rule where the network
        was active), and with the projects that hold a live finding there instead: those
        findings end, and nothing else there can change. Found with the bench's portfolio
        in one country: each activity there judged every project again, 150,000 of them,
        though the country had been active all along and no finding held."""
        settled = getattr(rule, "settled", None)
        if settled is None or not scope.countries:
            return scope
        quiet: frozenset[str] = settled(shared, now, scope.countries)
        if not quiet:
            return scope
        held = await live_keys_in(conn, rule.name, quiet)
        return Scope(scope.keys | frozenset(held), scope.countries - quiet)

    async def _parts(
        self,
        conn: asyncpg.Connection,
        readers: Sequence[asyncpg.Connection],
        rule: ScopedRule,
        scope: Scope | None,
        now: datetime,
    ) -> AsyncGenerator[Part, None]:
        """Each part of a scoped rule's subject (:func:`scoped_parts` on `conn`), in order:
        its own facts, the keys it judges and their live findings. With `readers`
        (connections), the next parts are read there, one on each in turn, while the
        caller judges this one on `conn`: PostgreSQL reads while Python judges. Safe in
        READ COMMITTED, where each statement reads what is committed when it starts, on any
        connection: the parts are apart (each project in one), so a part's findings are
        read before this transaction writes any of them.

        An evaluation of every rule at 908,000 bench events (76 parts of 2,000 projects)
        read its parts in 1.4 s, of which PostgreSQL's 0.55, and judged them in 0.9, one
        after the other: 1.9-2.5 s. Read ahead on two connections: 1.3-1.9 s (a third
        gained nothing); in a rebuild's rules phase, 2.0-2.7 s against 2.1-3.5."""

        fact = rule.subject.fact

        async def read(db: asyncpg.Connection, keys: list[str]) -> Part:
            own = await load_facts(db, {fact}, self._context(now, Scope(frozenset(keys))))
            judged = set(keys)  # those the part reads no fact of too: their findings end
            return own, judged, await live_findings(db, rule.name, judged)

        keys = scoped_parts(conn, rule.subject, scope, PART_SIZE)
        if not readers:
            async for part in keys:
                yield await read(conn, part)
            return
        # The oldest read in flight holds the reader the next part takes (each in turn).
        turn = itertools.cycle(readers)
        reading: deque[asyncio.Task[Part]] = deque()
        try:
            async for part in keys:
                done = await reading.popleft() if len(reading) == len(readers) else None
                reading.append(asyncio.ensure_future(read(next(turn), part)))
                if done is not None:
                    yield done
            while reading:
                yield await reading.popleft()
        finally:
            for task in reading:
                task.cancel()
            await asyncio.gather(*reading, return_exceptions=True)

    def due(self, since: datetime | None, now: datetime) -> list[Rule]:
        """The scheduled rules that time alone can have changed from `since` (the last run;
        None: none yet) to `now`: a `daily` rule only on a new date."""
        return [
            rule
            for rule in self.scheduled
            if since is None or not daily(rule) or since.date() != now.date()
        ]

    async def tick(self, pool: asyncpg.Pool, since: datetime | None = None) -> int:
        """One scheduled run: the time-based rules due `since` the last run (:meth:`due`;
        None: all of them), then a coherence score snapshot."""
        async with transaction(pool) as conn:
            changed = await self.evaluate(conn, self.due(since, self.clock()))
            await self.snapshot_score(conn)
        return changed

    async def evaluate_all(self, pool: asyncpg.Pool, readers: int = READ_AHEAD) -> int:
        """Evaluate every rule: in a transaction on one connection of `pool`, `readers`
        more reading a scoped rule's next parts meanwhile (:meth:`_parts`; the pool needs
        room for them all)."""
        if pool.get_max_size() < 1 + readers:
            raise ValueError(f"evaluate_all needs a pool of {1 + readers} connections")
        async with transaction(pool) as conn, contextlib.AsyncExitStack() as stack:
            more = [await stack.enter_async_context(pool.acquire()) for _ in range(readers)]
            changed = await self.evaluate(conn, self.rules, readers=more)
            await self.snapshot_score(conn)
        return changed

    async def snapshot_score(self, conn: asyncpg.Connection) -> None:
        now = self.clock()
        facts = await load_facts(conn, {"paired_activities"}, self._context(now))
        score = coherence_score(
            facts.paired_activities,
            await open_findings_by_severity(conn),
            now,
            self._window,
            await complementary_links(conn, now),
        )
        await store_snapshot(conn, now, score)
        await notify(conn, {"kind": "score", "at": now.isoformat()})  # the overview shows it

    async def read_as_of(self, conn: asyncpg.Connection, as_of: date) -> AsOf:
        """What the rules about the network see at the end of `as_of`, from the facts known
        then, and the coherence score it gives; nothing is stored. Rules about the running
        system (a silent service, failed validation) say nothing about a past date. A
        scoped rule judges its projects `PART_SIZE` at a time, as a live evaluation does:
        read whole, the projects of the bench's million events (96 MB of facts) and the
        one rule's 250,501 hits (116 MB) took the dashboard to 298 MiB."""
        first = FirstHits(AS_OF_HITS_KEPT)
        [score] = await self._as_of(conn, [as_of], first)
        return AsOf(as_of, first.kept(), first.counted, score)

    async def scores_as_of(self, conn: asyncpg.Connection, days: Sequence[date]) -> list[Score]:
        """The coherence score at the end of each of `days`, as :meth:`read_as_of` gives it,
        for a past period's series. The hits are counted, not made (:func:`count_hits`), and
        a scoped rule reads its projects once, a part at a time, for every day (each
        project as known on it: :func:`scoped_known_on`). Read as of each day, the twelve
        month ends of a year at the bench's 1.5 M events took 27-33 s: per day 250,501
        projects read and 250,501 hits made."""
        return await self._as_of(conn, days, None)

    async def read_with_series(
        self, conn: asyncpg.Connection, days: Sequence[date]
    ) -> tuple[AsOf, list[Score]]:
        """:meth:`read_as_of` the last of `days` and :meth:`scores_as_of` all of them, in
        one pass: a past overview shows both (apart, the last day was judged twice)."""
        first = FirstHits(AS_OF_HITS_KEPT)
        scores = await self._as_of(conn, days, first)
        return AsOf(days[-1], first.kept(), first.counted, scores[-1]), scores

    async def _as_of(
        self, conn: asyncpg.Connection, days: Sequence[date], first: FirstHits | None
    ) -> list[Score]:
        """The score as of each of `days` (ascending); with `first`, the last day's hits are
        kept and counted by it, the other days' counted here."""
        if list(days) != sorted(set(days)):
            raise ValueError("the days of a reading are distinct and ascending")
        rules = [rule for rule in self.rules if not operational(rule)]
        # The project rules judged a part at a time, each project known on each day; the
        # other rules read their facts as of each day whole (a mission's follow-ups and
        # conversions as of a day are not known from a later reading of it).
        scoped = [rule for rule in rules if is_scoped(rule) and rule.subject is PROJECTS]
        whole = [rule for rule in rules if rule not in scoped]
        counted = {day: Counter[str]() for day in days}
        last = days[-1]
        if first is not None:
            counted[last] = first.counted

        def judge(rule: Rule, facts: Facts, day: date) -> None:
            if first is not None and day == last:
                first.add(rule, rule.check(facts, end_of_day(day)))
            else:
                counted[day].update(count_hits(rule, facts, end_of_day(day)))

        # Per day: the facts of the whole rules, judged at once; kept of them only what the
        # scoped rules share between their parts, and the activities the score pairs.
        shared_needs = {n for r in scoped for n in r.needs - {PROJECTS.fact}}
        needs = {n for r in whole for n in r.needs} | shared_needs
        kept: dict[date, Facts] = {}
        for day in days:
            context = self._context(end_of_day(day), as_of=day)
            facts = await load_facts(conn, {"paired_activities", *needs}, context)
            for rule in whole:
                judge(rule, facts, day)
            kept[day] = Facts(
                paired_activities=facts.paired_activities,
                **{name: getattr(facts, name) for name in shared_needs},
            )
        if scoped:  # each part read once, as of the last day, and known on each day
            async with conn.transaction():  # the parts' cursor
                async for keys in scoped_parts(conn, PROJECTS, None, PART_SIZE):
                    part = self._context(end_of_day(last), Scope(frozenset(keys)), last)
                    own = await load_facts(conn, {PROJECTS.fact}, part)
                    for day, own_then in scoped_known_on(own, days):
                        for rule in scoped:
                            judge(rule, with_part(kept[day], own_then, rule), day)
        scores = []
        for day in days:
            now = end_of_day(day)
            links = await complementary_links(conn, now)
            paired = kept[day].paired_activities
            scores.append(coherence_score(paired, counted[day], now, self._window, links))
        return scores


async def _locked(conn: asyncpg.Connection) -> Growth:
    """Take the rules' lock for the caller's transaction; what it writes to ``findings``
    is counted from here (:class:`Growth`)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
    return await Growth.since_analyzed(conn)


def count_hits(rule: Rule, facts: Facts, now: datetime) -> Counter[str]:
    """The hits `rule` sees in `facts`, counted by severity: by its ``count`` where it has
    one (the isolated-project rule's 250,501 hits at the bench's million events took 1.2 s
    to make, for a count), else by checking."""
    count: Callable[[Facts, datetime], Counter[str]] | None = getattr(rule, "count", None)
    if count is not None:
        return count(facts, now)
    return Counter(hit.severity.value for hit in rule.check(facts, now))


def with_part(shared: Facts, own: Facts, rule: ScopedRule) -> Facts:
    """`shared` (the facts every part reads) with a part's own scoped facts (`own`), as
    `rule` judges that part."""
    return replace(shared, **{rule.subject.fact: getattr(own, rule.subject.fact)})


@dataclass(frozen=True)
class Owed:
    """What projected events owe the rules: rules to evaluate whole (by name), and scoped
    rules with what the events can have changed. A rule no longer in the catalogue (a
    queue written by an older version) is skipped."""

    whole: frozenset[str] = frozenset()
    scoped: Mapping[str, Scope] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.whole or self.scoped)

    @classmethod
    def merged(cls, rows: Iterable[Mapping[str, Any]]) -> Owed:
        """Everything the queued rows (``rules_pending``: rule names, and the scopes as
        JSON) owe together: scopes add up."""
        whole: set[str] = set()
        scoped: dict[str, Scope] = {}
        for row in rows:
            whole.update(row["rules"])
            for name, value in json.loads(row["scoped"]).items():
                scoped[name] = scoped.get(name, Scope()) | Scope.of_json(value)
        return cls(frozenset(whole), scoped)


@dataclass(frozen=True)
class AsOf:
    """A reading of the rules as of a date: its first hits with their rules, every hit
    counted by severity, and the score."""

    as_of: date
    hits: list[tuple[Rule, Hit]]
    """The first :data:`AS_OF_HITS_KEPT` of each rule and severity, by finding key (the
    findings' order within them): any filter by rule or severity has its first that many."""
    by_severity: Mapping[str, int]
    score: Score


AS_OF_HITS_KEPT = 5_000
"""Hits kept per rule and severity in a reading as of a date: the findings API lists 5,000 at
most. As of a past date of the bench's million events the rules saw 250,515 (250,501 of one
rule); every one kept, and made a finding's row each, took the dashboard to 420 MiB for the
API's findings (298 with these kept; the rest went with the scoped rule's parts)."""


class FirstHits:
    """The first `most` hits of each rule and severity (by key, ties in the order added),
    and every hit counted by severity (`counted`); a group is cut back whenever it holds
    twice `most`, so what is held is bounded by that, however many hits are added."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.counted: Counter[str] = Counter()
        self._groups: dict[tuple[str, str], list[tuple[str, int, Rule, Hit]]] = {}
        self._past: dict[tuple[str, str], str] = {}
        """Per group cut back, the largest key it kept: a later hit of that key or a larger
        one cannot be among the first (it came after), and is only counted."""
        self._seen = 0

    def add(self, rule: Rule, hits: Iterable[Hit]) -> None:
        for hit in hits:
            severity = hit.severity.value
            self.counted[severity] += 1
            name = (rule.name, severity)
            past = self._past.get(name)
            if past is not None and hit.key >= past:
                continue
            group = self._groups.setdefault(name, [])
            group.append((hit.key, self._seen, rule, hit))
            self._seen += 1
            if len(group) >= 2 * self.most:
                group[:] = heapq.nsmallest(self.most, group, key=_by_key)
                self._past[name] = group[-1][0]

    def kept(self) -> list[tuple[Rule, Hit]]:
        return [
            (rule, hit)
            for group in self._groups.values()
            for _, _, rule, hit in heapq.nsmallest(self.most, group, key=_by_key)
        ]


def _by_key(item: tuple[str, int, Rule, Hit]) -> tuple[str, int]:
    return item[0], item[1]
