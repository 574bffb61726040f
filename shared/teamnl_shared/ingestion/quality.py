"""Per-partner data quality, counted in memory and reported through the outbox.

Every answer to a partner is counted here (accepted, replayed, conflicting, rejected by
reason, how late the accepted events arrive). Nothing is written per request: a flood of
refused requests must not become a flood of database writes. Once per
``quality_report_seconds`` (and at shutdown) each partner with activity in the window gets
one ``PartnerQualityReported`` event, written to the service's own outbox in one
transaction; the relay publishes them like any other event.

Memory is bounded: only authenticated partners are counted (the keys are a short list),
reasons are problem kinds (a fixed list), and lateness keeps at most
:data:`LATENESS_SAMPLES` samples per partner and window (reservoir sampling).
"""

from __future__ import annotations

import random
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.ops import (
    MAX_LATENESS_SECONDS,
    MAX_REJECTION_REASONS,
    PartnerQualityReported,
)

from .keys import source_of

LATENESS_SAMPLES = 1024
PARTNER_SOURCE_PREFIX = source_of("")
OTHER_REASON = "other"
"""Where reasons beyond :data:`MAX_REJECTION_REASONS` go (never expected: kinds are few)."""


@dataclass
class PartnerWindow:
    """What one partner sent in the current window."""

    accepted: int = 0
    replayed: int = 0
    conflicting: int = 0
    parked: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    lateness_seen: int = 0
    lateness_max: float | None = None
    last_accepted_at: datetime | None = None

    def reject(self, reason: str) -> None:
        if reason not in self.rejected and len(self.rejected) >= MAX_REJECTION_REASONS - 1:
            reason = OTHER_REASON
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def accept(
        self, accepted_at: datetime, event_time: datetime | None, rng: random.Random
    ) -> None:
        self.accepted += 1
        self.last_accepted_at = accepted_at
        if event_time is None:
            return
        late = min(max((accepted_at - event_time).total_seconds(), 0.0), MAX_LATENESS_SECONDS)
        self.lateness_seen += 1
        self.lateness_max = late if self.lateness_max is None else max(self.lateness_max, late)
        if len(self.lateness) < LATENESS_SAMPLES:
            self.lateness.append(late)
            return
        slot = rng.randrange(self.lateness_seen)  # reservoir: every sample equally likely
        if slot < LATENESS_SAMPLES:
            self.lateness[slot] = late


@dataclass
class QualityCounters:
    """The current window's counts per partner of one process."""

    service: str
    reporter: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:12]}")
    window_start: datetime = field(default_factory=lambda: datetime.now(UTC))
    partners: dict[str, PartnerWindow] = field(default_factory=dict)
    _sequence: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def count(
        self,
        partner: str,
        *,
        status: int,
        reason: str = "",
        event_time: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """One answer to ``partner``. A 5xx or 429 is the service's state, not the
        partner's data, and is not counted."""
        if status >= 500 or status == 429:
            return
        window = self.partners.setdefault(partner, PartnerWindow())
        if status == 202:
            window.accept(now or datetime.now(UTC), event_time, self._rng)
        elif status == 200:
            window.replayed += 1
        elif status == 409:
            window.conflicting += 1
        else:
            window.reject(reason or str(status))

    def parked(self, source: str) -> None:
        """An accepted event of ``source`` the relay could never publish (parked)."""
        partner = source.removeprefix(PARTNER_SOURCE_PREFIX)
        if partner != source:  # only partners' events; a quality report is no partner's
            self.partners.setdefault(partner, PartnerWindow()).parked += 1

    def take(self, now: datetime | None = None) -> list[Event]:
        """The reports of the window that ends now (one per partner with activity); the
        next window starts empty."""
        partners, start = self.partners, self.window_start
        end = max(now or datetime.now(UTC), start)  # a clock stepped back: an empty window
        self.partners, self.window_start = {}, end
        self._sequence += 1
        return [
            self._report(
                f"{self.reporter}-{self._sequence:06d}-{n:04d}", partner, counts, start, end
            )
            for n, (partner, counts) in enumerate(sorted(partners.items()))
        ]

    def _report(
        self, report_id: str, partner: str, counts: PartnerWindow, start: datetime, end: datetime
    ) -> Event:
        data = PartnerQualityReported(
            report_id=report_id,
            service=self.service,
            reporter=self.reporter,
            partner=partner,
            window_start=start,
            window_end=end,
            accepted=counts.accepted,
            replayed=counts.replayed,
            conflicting=counts.conflicting,
            parked=counts.parked,
            rejected=dict(sorted(counts.rejected.items())),
            lateness_samples=counts.lateness_seen,
            lateness_p50_seconds=statistics.median(counts.lateness) if counts.lateness else None,
            lateness_max_seconds=counts.lateness_max,
            last_accepted_at=counts.last_accepted_at,
        )
        return Event(
            id=report_id,
            source=f"/teamnl/{self.service}/quality",
            type=PartnerQualityReported.TYPE,
            subject=partner,
            time=end,
            data=data,
        )
