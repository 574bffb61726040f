"""Group commit: concurrent single-event requests share one transaction.

One transaction per request makes every POST pay a BEGIN, its handler's statement, a
receipt/outbox write and a COMMIT (a WAL flush) of its own. Instead each request queues its
parsed event and awaits its outcome; a writer task takes everything queued (up to
``max_events``, waiting at most ``linger`` seconds for more once it has one) and runs it
through the same pipeline as a batch: one transaction, one statement that queues the
outbox rows and claims the receipts, the events applied together where their handlers
allow (see :mod:`.pipeline`). Every guarantee of a lone request holds:

- idempotency: a replay in a later group answers 200 with the stored receipt; two copies of
  one ``(source, id)`` in the same group answer 202 and 200 (or 409 for other content);
- per-key order: events are routed to a writer by their key, so the events of one key are
  applied, queued in the outbox and committed in arrival order;
- the outbox row commits with the state, and carries the trace context of its own request;
  the group's statements run in the context of its first request, with a span linking all;
- a refused event rolls back to its savepoint alone; a crash in one event's handler is
  answered 500 for that request only (the group is run again, each request on its own);
- the database unavailable (connect refused, connection ended mid-group): every request of
  the group raises the error, answered 503 + Retry-After; nothing of the group is stored.

``writers=0`` turns it off: each request runs its own transaction (the bench compares both).

How many requests each transaction carried is recorded once per transaction, in the
histogram ``teamnl.ingestion.group.size`` (by service): it tells how much the requests of a
given load share (one each while they do not overlap, more as they do).

A writer lingers only while requests overlap (:meth:`GroupCommit.request`): one client
posting one event after another sends the next only once the last is answered, so no
other request can join its group, and waiting would only delay each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Tracer

from teamnl_shared.contract.envelope import Event
from teamnl_shared.telemetry.metrics import Metrics

from .keys import Partner
from .pipeline import Outcome, Pipeline, Submission
from .unavailable import is_unavailable

log = logging.getLogger(__name__)

ConnectionSource = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

OVERLAP_MEMORY = 1.0
"""Seconds a writer goes on lingering after two requests last overlapped: under a steady
load of independent requests they overlap all the time, and the next ones arrive while it
waits; with one client sending one request after another they never do."""


@dataclass
class _Waiting:
    submission: Submission
    context: otel_context.Context
    future: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def answer(self, outcome: Outcome) -> None:
        if not self.future.done():  # the client may have gone away meanwhile
            self.future.set_result(outcome)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class GroupCommit:
    """The writers of one process; :meth:`submit` is what a request awaits."""

    def __init__(
        self,
        pipeline: Pipeline,
        connection: ConnectionSource,
        *,
        max_events: int,
        linger: float,
        writers: int,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
        service: str = "",
    ) -> None:
        self.pipeline = pipeline
        self.connection = connection
        self.max_events = max_events
        self.linger = linger
        self.tracer = tracer or trace.get_tracer("teamnl.ingestion")
        self.metrics = metrics
        self.service = service
        self._queues: list[asyncio.Queue[_Waiting]] = [asyncio.Queue() for _ in range(writers)]
        self._tasks: list[asyncio.Task[None]] = []
        self._requests = 0  # events requests in flight (:meth:`request`)
        self._overlapped_at = -math.inf  # when one last began while another was in flight

    def start(self) -> None:
        for number, queue in enumerate(self._queues):
            task = asyncio.create_task(self._write(queue), name=f"group-commit-{number}")
            self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for queue in self._queues:
            while not queue.empty():
                queue.get_nowait().fail(RuntimeError("the ingestion app is stopping"))

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around an events request (the events routes' handler, from before its key is
        checked to its answer): a writer lingers for more requests only within
        ``OVERLAP_MEMORY`` seconds of two overlapping.

        On the bench machine, one client posting to nlib one event after another (a
        partner's system sending what it has, one by one), nlib restarted with the code
        before and after in turn, three rounds each: 141-205 answers a second (p50 4.7-6.7
        ms) when every group waited its 2 ms linger, 240-313 (p50 3.1-3.7 ms) now. Under
        load the linger still pays: single POSTs at 800 ev/s over the three services were
        answered in 63 / 174 ms (p50 / p99) with it and 126 / 720 with none (the requests
        that arrive while a writer waits share its transaction), 63 / 197 with this rule;
        64 clients in a closed loop got as much with it as with none (their group forms
        while the last transaction runs)."""
        if self._requests:
            self._overlapped_at = asyncio.get_running_loop().time()
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1

    def _lingering(self, now: float) -> bool:
        return now - self._overlapped_at < OVERLAP_MEMORY

    async def submit(
        self, partner: Partner, event: Event, trace_headers: Mapping[str, str]
    ) -> Outcome:
        """Queue one authorised-or-not event; its outcome once its group committed."""
        submission = Submission(partner, event, trace_headers)
        if not self._queues:
            async with self.connection() as conn:
                [outcome] = await self.pipeline.accept_group(conn, [submission])
            self._committed(1)
            return outcome
        if not self._tasks:
            raise RuntimeError("the ingestion app is not started (lifespan not running)")
        waiting = _Waiting(submission, otel_context.get_current())
        self._queue_of(event).put_nowait(waiting)
        return await waiting.future

    def _queue_of(self, event: Event) -> asyncio.Queue[_Waiting]:
        # A stable hash (not hash(): salted per process, fine, but crc32 is cheap and plain).
        return self._queues[zlib.crc32(event.key.encode()) % len(self._queues)]

    async def _write(self, queue: asyncio.Queue[_Waiting]) -> None:
        while True:
            group = await self._collect(queue)
            await self._commit(group)

    async def _collect(self, queue: asyncio.Queue[_Waiting]) -> list[_Waiting]:
        group = [await queue.get()]
        await asyncio.sleep(0)  # let requests that are ready in this loop turn queue theirs
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + (self.linger if self._lingering(now) else 0.0)
        while len(group) < self.max_events:
            if not queue.empty():
                group.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                group.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return group

    async def _commit(self, group: list[_Waiting]) -> None:
        try:
            outcomes = await self._transact(group)
        except Exception as error:  # noqa: BLE001 - answered per request below
            await self._failed(group, error)
        else:
            self._committed(len(group))
            for waiting, outcome in zip(group, outcomes, strict=True):
                waiting.answer(outcome)

    def _committed(self, events: int) -> None:
        if self.metrics is not None:
            self.metrics.group_committed(service=self.service, events=events)

    async def _transact(self, group: list[_Waiting]) -> list[Outcome]:
        links = [Link(trace.get_current_span(w.context).get_span_context()) for w in group]
        token = otel_context.attach(group[0].context)
        try:
            with self.tracer.start_as_current_span(
                "ingestion group commit", links=links, attributes={"teamnl.group.size": len(group)}
            ):
                async with self.connection() as conn:
                    submissions = [w.submission for w in group]
                    return await self.pipeline.accept_group(conn, submissions)
        finally:
            otel_context.detach(token)

    async def _failed(self, group: list[_Waiting], error: Exception) -> None:
        if is_unavailable(error) or len(group) == 1:
            for waiting in group:
                waiting.fail(error)
            return
        # A bug in one event's handler must not fail the others: run each alone.
        log.warning("group of %d failed (%r); committing each request alone", len(group), error)
        for waiting in group:
            await self._commit([waiting])
