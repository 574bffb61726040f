"""What a service tells the kit about itself: families, handlers, migrations, resources."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import specs_for_family
from teamnl_shared.contract.types import EventData

Handler = Callable[[asyncpg.Connection, Event], Awaitable[None]]
"""Applies one valid event to the service's state, on a connection inside the transaction."""

FilterType = type[str] | type[int] | type[date] | type[bool]
D = TypeVar("D", bound=EventData)


def data_as(event: Event, model: type[D]) -> D:
    """The event's data as the model its type declares (a handler's typed view)."""
    if not isinstance(event.data, model):
        raise TypeError(f"{event.type} carries {type(event.data).__name__}, not {model.__name__}")
    return event.data


_PLACEHOLDER = re.compile(r"\$(\d+)")


def arity(statement: str) -> int:
    """How many arguments a statement takes: its highest ``$n``."""
    return max(map(int, _PLACEHOLDER.findall(statement)), default=0)


def shifted(statement: str, by: int) -> str:
    """The statement with each ``$n`` made ``$(n + by)``, to follow another's arguments."""
    return _PLACEHOLDER.sub(lambda number: f"${int(number[1]) + by}", statement)


class Rejected(Exception):
    """A domain rule refuses the event (answered 422, or ``status``, naming the field)."""

    def __init__(self, field: str, reason: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class SetHandler:
    """A handler that is one SQL statement per event, judged by whether it wrote a row.

    ``statement`` writes ``table`` only and takes ``args(event)`` as ``$1..$n``; an event
    whose statement writes no row (``ON CONFLICT DO NOTHING``, or ``DO UPDATE ... WHERE``
    false) is refused with ``refusal(event)``; ``refusal=None`` declares that it always
    writes. Alone it is a :data:`Handler`. In a batch or a group, the pipeline applies a run
    of events of its type with one ``fetchmany`` (one round trip, statements executed in
    order, so exactly as one by one): each execution returns its own position.
    """

    table: str
    statement: str
    args: Callable[[Event], Sequence[Any]]
    refusal: Callable[[Event], Rejected] | None = None

    @cached_property
    def sql(self) -> str:
        """The statement returning each execution's position (built once: it runs per batch)."""
        return f"{self.statement} RETURNING ${arity(self.statement) + 1}::int"

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        [refused] = await self.many(conn, [event])
        if refused is not None:
            raise refused

    async def many(
        self, conn: asyncpg.Connection, events: Sequence[Event]
    ) -> list[Rejected | None]:
        """Each event applied in order; for each, None or its refusal."""
        rows = await conn.fetchmany(
            self.sql, [(*self.args(event), position) for position, event in enumerate(events)]
        )
        written = {row[0] for row in rows}
        return [
            None if position in written else self._refused(event)
            for position, event in enumerate(events)
        ]

    def _refused(self, event: Event) -> Rejected:
        if self.refusal is None:
            raise RuntimeError(f"{event.type}: the statement on {self.table} wrote no row")
        return self.refusal(event)


@dataclass(frozen=True)
class Resource:
    """One state table exposed read-only at ``GET /v1/<name>`` and ``GET /v1/<name>/{id}``."""

    name: str  # URL segment, e.g. "missions"
    table: str
    key: str  # id column, also the paging cursor
    model: type[BaseModel]  # one item as returned; rows are validated into it
    filters: Mapping[str, FilterType] = field(default_factory=dict)  # query param = column
    description: str = ""
    # The event data field that names a row, when it is not `key`: a key limited with
    # --types reads the resource only if one of its types carries this field.
    written_by_field: str = ""


@dataclass(frozen=True)
class ServiceDefinition:
    name: str  # "nlib" | "tinl" | "werkplaats"
    title: str
    families: tuple[str, ...]
    handlers: Mapping[str, Handler | SetHandler]
    migrations_package: str
    resources: tuple[Resource, ...] = ()
    version: str = "0.1.0"
    description: str = ""

    def __post_init__(self) -> None:
        missing = sorted(set(self.event_types) - set(self.handlers))
        extra = sorted(set(self.handlers) - set(self.event_types))
        if missing or extra:
            raise ValueError(f"{self.name}: handlers missing for {missing}, unexpected {extra}")

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(spec.type for family in self.families for spec in specs_for_family(family))

    def accepts(self, event_type: str) -> bool:
        return event_type in self.handlers
