"""Accepting events: authorise, deduplicate, apply, enqueue, all in one transaction.

The request handler never publishes: the events' Kafka records are written to the outbox in
the same transaction as the state rows and the receipts; the relay publishes them after
commit.

A batch request is one transaction; so is a group of concurrent single-event requests
(:mod:`.groupcommit`), each event with its own partner and trace context. A refused event
is undone alone (a savepoint per event, in a second run once one was refused, see
:class:`_UnitOfWork`) and every event is answered as if it had been sent on its own, in
batch order. Claims, receipts and outbox rows are written
for the whole batch at once (see :mod:`.receipts`). When the transaction cannot finish
(a deadlock with another batch locking the same aggregates in another order), it is rolled
back and run again, up to :data:`ATTEMPTS` times; nothing is ever partly stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg import exceptions as pg
from opentelemetry import trace
from opentelemetry.trace import Tracer

from teamnl_shared import outbox
from teamnl_shared.contract.envelope import Event, Problem
from teamnl_shared.telemetry.messaging import EVENT_TYPE

from . import receipts
from .keys import Partner
from .problems import ApiProblem, field_problem, forbidden
from .receipts import Claim, Identity, StoredReceipt
from .service import Rejected, ServiceDefinition, SetHandler
from .settings import IngestionSettings

log = logging.getLogger(__name__)
REPLAY_HEADER = "Idempotent-Replay"
ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What one event answers: 202 accepted, 200 replay, or a problem."""

    status: int
    receipt: dict[str, Any] | None = None
    problem: ApiProblem | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == 202


@dataclass(frozen=True)
class Submission:
    """One event (or the problem it parsed to) as sent by a partner within a trace."""

    partner: Partner
    item: Event | ApiProblem
    trace_headers: Mapping[str, str]


@dataclass(frozen=True)
class Candidate:
    """An event that parsed and that the key may send, at its place in the request."""

    index: int
    event: Event
    fingerprint: str
    partner: str
    trace_headers: Mapping[str, str]

    @property
    def identity(self) -> Identity:
        return (self.event.source, self.event.id)


@dataclass(frozen=True)
class Pipeline:
    service: ServiceDefinition
    settings: IngestionSettings
    on_committed: Callable[[], None] | None = None
    """Told after each transaction that accepted an event (its outbox rows committed)."""
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.ingestion"))
    """Its spans (``apply <table>``): the app passes its own telemetry's, as for the relay's;
    the global provider is another app's when several run in one process."""

    def authorise(self, partner: Partner, event: Event) -> None:
        if not self.service.accepts(event.type):
            raise field_problem(
                422,
                "invalid-event",
                "type",
                f"{event.type} is not an event type of the {self.service.name} service",
            )
        if event.type not in partner.event_types:
            raise forbidden("type", f"the key of {partner.partner} may not send {event.type}")
        if event.source != partner.source:
            raise forbidden(
                "source",
                f"the key of {partner.partner} writes as {partner.source!r}, not {event.source!r}",
            )

    async def accept_all(
        self,
        conn: asyncpg.Connection,
        partner: Partner,
        items: Sequence[Event | ApiProblem],
        trace_headers: Mapping[str, str],
    ) -> list[Outcome]:
        """One outcome per item, in order, from one transaction on ``conn``; an item that
        did not parse comes as its problem."""
        return await self.accept_group(
            conn, [Submission(partner, item, trace_headers) for item in items]
        )

    async def accept_group(
        self, conn: asyncpg.Connection, submissions: Sequence[Submission]
    ) -> list[Outcome]:
        """One outcome per submission, in order, from one transaction on ``conn``: a batch
        (one partner, one trace) or a group of single-event requests (see
        :mod:`.groupcommit`), each with its own partner and trace."""
        outcomes: dict[int, Outcome] = {}
        candidates: list[Candidate] = []
        for index, submission in enumerate(submissions):
            admitted = self._admit(index, submission)
            if isinstance(admitted, Outcome):
                outcomes[index] = admitted
            else:
                candidates.append(admitted)
        if candidates:
            outcomes.update(await self._transact(conn, candidates))
        return [outcomes[index] for index in range(len(submissions))]

    def _admit(self, index: int, submission: Submission) -> Outcome | Candidate:
        item, partner = submission.item, submission.partner
        if isinstance(item, ApiProblem):
            return Outcome(item.status, problem=item)
        try:
            self.authorise(partner, item)
        except ApiProblem as problem:
            return Outcome(problem.status, problem=problem)
        return Candidate(index, item, item.fingerprint(), partner.partner, submission.trace_headers)

    async def _transact(
        self, conn: asyncpg.Connection, candidates: list[Candidate]
    ) -> dict[int, Outcome]:
        attempt = 1
        careful = False
        while True:
            unit = _UnitOfWork(self, conn, candidates, careful=careful)
            try:
                outcomes = await unit.run()
            except _Refused:
                careful = True  # run it again, each event in its own savepoint
            except pg.TransactionRollbackError as error:
                if attempt >= ATTEMPTS:
                    raise
                log.info("ingestion transaction rolled back (%r); attempt %d", error, attempt + 1)
                attempt += 1
            else:
                if self.on_committed is not None and any(o.accepted for o in outcomes.values()):
                    self.on_committed()
                return outcomes


class _Undone(Exception):
    """The only event that could change anything was refused: roll the transaction back."""


class _Refused(Exception):
    """An event was refused, or found stored before, in the optimistic run: roll back, run
    ``careful``."""


class _UnitOfWork:
    """One transaction over the admitted events of a request or group.

    A savepoint per event costs a round trip per event (a third of a batch's database time
    in the profile), and nearly every event is accepted and new. So the first run is
    optimistic: no savepoints, and no claim before the events are applied - their receipts
    are claimed as they are written, in the statement that queues their Kafka records
    (:func:`.receipts.claim_and_record`). When an event is refused, or one was stored before
    (a replay, applied again in this run), the transaction is rolled back and run again
    ``careful``: the identities claimed first (a replay is then answered from its receipt,
    not applied), each event in its own savepoint. At most two runs; each event is answered
    as if sent alone either way.

    The claim in the write saves a round trip per transaction, one of five in a group of
    single events (BEGIN, apply, claim, record, COMMIT before it). A replay or a refused
    event now costs a second transaction: rare (a partner's retry, a rule refused). On the
    bench machine, nlib restarted with the code before and after in turn: one client posting
    one event after another got 211-223 answers a second before (nlib 3.0-3.2 ms of CPU per
    event), 221-271 after (2.6-3.0), three rounds each; 64 clients got 945-1,004 before and
    910-1,056 after, four rounds each (their groups hold about 25 events: no difference).

    The optimistic run also applies the events of :class:`SetHandler` types together (see
    :class:`_Waiting`): one round trip per run of a type instead of one per event. A lone
    event of such a type (a group of one, as at low rates nearly every group is) runs in
    one statement with no transaction of its own (:meth:`_run_lone`).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        conn: asyncpg.Connection,
        candidates: list[Candidate],
        *,
        careful: bool,
    ) -> None:
        self.pipeline = pipeline
        self.conn = conn
        self.candidates = candidates
        self.careful = careful
        self.outcomes: dict[int, Outcome] = {}
        self.claimed: set[Identity] = set()
        self.stored: dict[Identity, StoredReceipt] = {}
        self.accepted: dict[Identity, Candidate] = {}  # in order of acceptance
        self.repeats: list[Candidate] = []  # a later copy of an event accepted in this batch
        self.several = False
        self.savepoints = _Savepoints(conn, enabled=False)
        self.waiting = _Waiting()

    async def run(self) -> dict[int, Outcome]:
        lone = self._lone()
        if lone is not None:
            return await self._run_lone(*lone)
        try:
            async with self.conn.transaction():
                if self.careful:
                    await self._claim()
                for candidate in self.candidates:
                    await self._decide(candidate)
                await self._apply_waiting()
                await self._record()
        except _Undone:
            self._answer_replays()  # its outcome is set; nothing else was written
        return self.outcomes

    def _lone(self) -> tuple[Candidate, SetHandler] | None:
        """The one event of an optimistic run outside a transaction, when its handler is a
        :class:`SetHandler`: applied, queued and claimed in one statement."""
        if self.careful or len(self.candidates) != 1 or self.conn.is_in_transaction():
            return None
        [candidate] = self.candidates
        handler = self.pipeline.service.handlers[candidate.event.type]
        return (candidate, handler) if isinstance(handler, SetHandler) else None

    async def _run_lone(self, candidate: Candidate, handler: SetHandler) -> dict[int, Outcome]:
        """A lone event in one statement, no BEGIN or COMMIT: 1 round trip instead of 4
        (see :func:`.receipts.apply_claim_and_record`). Its statement writing no row (a
        refusal, or a replay applied again), or its receipt or outbox row there before (a
        replay): nothing stays, and it is run again ``careful``. No span of its own: the
        statement's (asyncpg's) is the only child of the request's or group's."""
        try:
            receipt = await receipts.apply_claim_and_record(
                self.conn,
                handler.statement,
                handler.args(candidate.event),
                self._outbox_record(candidate),
                candidate.fingerprint,
                candidate.partner,
                _now(),
            )
        except pg.UniqueViolationError:
            raise _Refused from None
        if receipt is None:
            raise _Refused
        return {candidate.index: Outcome(202, receipt=receipt)}

    def _answer_replays(self) -> None:
        """The candidates after the one refused event: replays of stored receipts (the only
        other kind a batch without savepoints holds), answered without a write."""
        for candidate in self.candidates:
            if candidate.index not in self.outcomes:
                stored = self.stored[candidate.identity]
                outcome = _replay_or_conflict(stored.fingerprint, stored.receipt, candidate)
                self.outcomes[candidate.index] = outcome

    async def _claim(self) -> None:
        firsts: dict[Identity, Candidate] = {}
        for candidate in self.candidates:
            firsts.setdefault(candidate.identity, candidate)
        claims = [Claim(i, c.event.type, c.fingerprint, c.partner) for i, c in firsts.items()]
        self.claimed = await receipts.claim(self.conn, claims)
        others = [identity for identity in firsts if identity not in self.claimed]
        if others:
            self.stored = await receipts.find(self.conn, others)
        appliable = sum(c.identity in self.claimed for c in self.candidates)
        self.several = appliable > 1
        self.savepoints = _Savepoints(self.conn, enabled=self.several and self.careful)

    async def _decide(self, candidate: Candidate) -> None:
        stored = self.stored.get(candidate.identity)
        if stored is not None:
            outcome = _replay_or_conflict(stored.fingerprint, stored.receipt, candidate)
            self.outcomes[candidate.index] = outcome
        elif candidate.identity in self.accepted or candidate.identity in self.waiting:
            self.repeats.append(candidate)  # answered once the first copy has its receipt
        else:
            await self._apply(candidate)

    async def _apply(self, candidate: Candidate) -> None:
        event = candidate.event
        handler = self.pipeline.service.handlers[event.type]
        if isinstance(handler, SetHandler) and not self.careful:
            if not self.waiting.admits(event.type, handler):
                await self._apply_waiting()
            self.waiting.add(handler, candidate)
            return
        await self._apply_waiting()
        await self.savepoints.enter()
        try:
            await handler(self.conn, event)
        except Rejected as rejected:
            await self._refuse(candidate, _rejection(rejected))
        except ApiProblem as problem:
            await self._refuse(candidate, problem)
        else:
            self.accepted[candidate.identity] = candidate

    async def _apply_waiting(self) -> None:
        """Apply the waiting runs (their tables are disjoint, so in any order), then accept or
        refuse their events in request order, as if applied one by one."""
        if not self.waiting:
            return
        waiting, self.waiting = self.waiting, _Waiting()
        refused: dict[int, ApiProblem] = {}
        for handler, run in waiting.runs.values():
            attributes: dict[str, str | int] = {
                EVENT_TYPE: run[0].event.type,
                "teamnl.events": len(run),
            }
            span = f"apply {handler.table}"
            with self.pipeline.tracer.start_as_current_span(span, attributes=attributes):
                rejections = await handler.many(self.conn, [c.event for c in run])
            for candidate, rejected in zip(run, rejections, strict=True):
                if rejected is not None:
                    refused[candidate.index] = _rejection(rejected)
        for candidate in sorted(waiting.candidates(), key=lambda c: c.index):
            if candidate.index in refused:
                await self._refuse(candidate, refused[candidate.index])
            else:
                self.accepted[candidate.identity] = candidate

    async def _refuse(self, candidate: Candidate, problem: ApiProblem) -> None:
        if not self.careful:
            raise _Refused  # unclaimed, it may be a replay, whose answer is its receipt
        self.outcomes[candidate.index] = Outcome(problem.status, problem=problem)
        if not self.several:
            raise _Undone
        await self.savepoints.rollback()

    async def _record(self) -> None:
        accepted = list(self.accepted.values())
        if accepted:
            records = [self._outbox_record(c) for c in accepted]
            fingerprints = [c.fingerprint for c in accepted]
            now = _now()
            if self.careful:
                stored = await receipts.record_accepted(self.conn, records, fingerprints, now)
            else:
                partners = [c.partner for c in accepted]
                try:
                    stored = await receipts.claim_and_record(
                        self.conn, records, fingerprints, partners, now
                    )
                except pg.UniqueViolationError:  # its outbox row is still there, unsent
                    raise _Refused from None
                if len(stored) < len(accepted):
                    raise _Refused  # one was stored before: a replay, applied again here
            for c in accepted:
                self.outcomes[c.index] = Outcome(202, receipt=stored[c.identity])
            for c in self.repeats:
                first = self.accepted[c.identity]
                outcome = _replay_or_conflict(first.fingerprint, stored[c.identity], c)
                self.outcomes[c.index] = outcome
        refused = [identity for identity in self.claimed if identity not in self.accepted]
        if refused:
            await receipts.release(self.conn, refused)

    def _outbox_record(self, candidate: Candidate) -> outbox.OutboxRecord:
        topic = self.pipeline.settings.topic(candidate.event.topic)
        return outbox.record_of(candidate.event, candidate.trace_headers, topic)


class _Waiting:
    """Events of set handlers not yet applied, a run per event type in request order.

    Runs on different tables commute, so they wait together; an event of another type on
    a table a run waits on, or an event of a plain handler (which may read any table),
    first applies everything waiting.
    """

    def __init__(self) -> None:
        self.runs: dict[str, tuple[SetHandler, list[Candidate]]] = {}
        self._identities: set[Identity] = set()

    def __contains__(self, identity: Identity) -> bool:
        return identity in self._identities

    def __bool__(self) -> bool:
        return bool(self.runs)

    def admits(self, event_type: str, handler: SetHandler) -> bool:
        return all(
            waiting_type == event_type or waiting.table != handler.table
            for waiting_type, (waiting, _) in self.runs.items()
        )

    def add(self, handler: SetHandler, candidate: Candidate) -> None:
        self.runs.setdefault(candidate.event.type, (handler, []))[1].append(candidate)
        self._identities.add(candidate.identity)

    def candidates(self) -> list[Candidate]:
        return [candidate for _, run in self.runs.values() for candidate in run]


class _Savepoints:
    """A savepoint around each applied event of a batch. Releasing the previous savepoint and
    setting the next is one round trip; after a rollback to it, the savepoint stands and is
    used again."""

    def __init__(self, conn: asyncpg.Connection, *, enabled: bool) -> None:
        self.conn = conn
        self.enabled = enabled
        self._set = False
        self._dirty = False

    async def enter(self) -> None:
        if not self.enabled:
            return
        if not self._set:
            await self.conn.execute("SAVEPOINT ingestion_event")
        elif self._dirty:
            await self.conn.execute("RELEASE SAVEPOINT ingestion_event; SAVEPOINT ingestion_event")
        self._set = self._dirty = True

    async def rollback(self) -> None:
        await self.conn.execute("ROLLBACK TO SAVEPOINT ingestion_event")
        self._dirty = False


def _now() -> str:
    """When an event was accepted, as its receipt says."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _rejection(rejected: Rejected) -> ApiProblem:
    return ApiProblem(
        rejected.status, "rejected", str(rejected), [Problem(rejected.field, rejected.reason)]
    )


def _replay_or_conflict(fingerprint: str, receipt: dict[str, Any], again: Candidate) -> Outcome:
    if fingerprint == again.fingerprint:
        return Outcome(200, receipt=receipt, headers={REPLAY_HEADER: "true"})
    event = again.event
    problem = field_problem(
        409, "conflict", "id", f"({event.source}, {event.id}) was accepted with other content"
    )
    return Outcome(409, problem=problem)
