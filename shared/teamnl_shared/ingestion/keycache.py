"""Verified API keys, kept in process for a few seconds.

Every request names its key; asking the key store each time costs a database round trip
per request. An active key, once found, is trusted for ``ttl`` seconds (setting
``key_cache_seconds``, 5 s by default): a revoked key is refused at most that long after
``teamnl-keys revoke``. The secret is still checked against the stored SHA-256 on every
request, so a wrong secret for a cached key id is refused at once. Unknown and revoked keys
are not cached (a key issued a moment ago works at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from .keys import ActiveKey, Partner, find_active_key, secret_matches, split_key

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    key: ActiveKey
    expires: float


class KeyCache:
    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    async def partner(self, pool: asyncpg.Pool, key: str) -> Partner | None:
        """The partner behind an active key, or None for a malformed, unknown or revoked key."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        active = await self._active(pool, key_id)
        if active is None or not secret_matches(secret, active.secret_sha256):
            return None
        return active.partner

    async def _active(self, pool: asyncpg.Pool, key_id: str) -> ActiveKey | None:
        now = self._clock()
        entry = self._entries.get(key_id)
        if entry is not None and entry.expires > now:
            return entry.key
        self._entries.pop(key_id, None)
        active = await find_active_key(pool, key_id)
        if active is not None and self.ttl > 0:
            self._remember(key_id, _Entry(active, now + self.ttl))
        return active

    def _remember(self, key_id: str, entry: _Entry) -> None:
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[key_id] = entry
