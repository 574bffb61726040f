"""The overview's data of the current reading, and the latest event's date every reading
starts from, kept between two changes of the projections.

Every request for the overview would otherwise run its dozen queries again, although the
figures change only when a consumer batch commits, a finding changes, a coherence score
snapshot is stored or a rebuild switches over - and each of those sends a NOTIFY that the
live hub receives (`live`). The runtime connects the two
(``hub.watch(cache.clear)``): every notification, and every time the hub starts or stops
listening (notifications may have been missed), empties the cache. While the hub is not
listening nothing is served from it, and an entry is never older than ``max_age_seconds``
(``DASHBOARD_OVERVIEW_CACHE_SECONDS``; 0 turns the cache off), so a lost notification
shows within that time.

Concurrent misses of one key share one computation. Only what many sessions share is kept:
plain data, the overview's content rendered per language and role, and its whole page per
language and member (their header names the member), under a key holding the member; the
forms of both carry a slot for the CSRF token instead of a session's
(`web.templating.shared_part`). Never what belongs to one session; callers must not change
what they are given, since other requests are given the same object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from .period import Reading

Value = TypeVar("Value")
MAX_ENTRIES = 64
"""Entries kept at once, the oldest going first: per reading its data, its content per
language and role, and its page per language and member (the usual reading is this year
as of today, so one process keeps the pages of some 60 members between two changes)."""


def overview_key(view: str, read: Reading) -> Hashable:
    """What one view of the overview depends on: the reading (the yearly allocations are
    settings, the same for every request of a process)."""
    return (view, read)


@dataclass(frozen=True)
class _Entry:
    started_at: float
    value: asyncio.Future[Any]


class ReadCache:
    """Values by key, computed once between two calls of :meth:`clear` and at most
    ``max_age_seconds`` old; nothing is kept or served while ``live()`` is false."""

    def __init__(
        self,
        max_age_seconds: float,
        live: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age_seconds
        self._live = live
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Value]]) -> Value:
        """The value of `key`, computed by `compute` unless a fresh one is kept."""
        if self._max_age <= 0 or not self._live():
            return await compute()
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.started_at >= self._max_age:
            entry = self._start(key, compute)
        # shielded: a request that goes away does not cancel the others' computation
        return await asyncio.shield(entry.value)

    def clear(self) -> None:
        """Forget every value; computations under way finish for those already waiting."""
        self._entries.clear()

    def _start(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> _Entry:
        self._make_room()
        entry = _Entry(self._clock(), asyncio.ensure_future(compute()))
        self._entries[key] = entry
        entry.value.add_done_callback(lambda done: self._forget_failure(key, entry, done))
        return entry

    def _make_room(self) -> None:
        now = self._clock()
        for key, entry in list(self._entries.items()):
            if now - entry.started_at >= self._max_age:
                del self._entries[key]
        while len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]  # the oldest

    def _forget_failure(self, key: Hashable, entry: _Entry, done: asyncio.Future[Any]) -> None:
        """A failed computation is not kept: the next request tries again."""
        failed = done.cancelled() or done.exception() is not None  # (marks it retrieved)
        if failed and self._entries.get(key) is entry:
            del self._entries[key]
