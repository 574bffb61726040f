"""The teamnl metric instruments, created once per `Telemetry` from its meter.

Instrument names are OpenTelemetry names; the Prometheus exporter turns dots into
underscores, appends the unit (``s`` -> ``_seconds``; ``{...}`` annotations are dropped)
and ``_total`` for counters. The resulting names are listed in the package docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

OutboxProbe = Callable[[], tuple[int, float]]
"""Returns (unsent outbox rows, age in seconds of the oldest unsent row)."""

FindingsProbe = Callable[[], Mapping[tuple[str, str], int]]
"""Returns open findings counted per (rule, severity)."""

# 1 ms .. 30 s, roughly 1-2.5-5 per decade: end-to-end latency spans HTTP accept -> consumer.
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# Powers of two up to the group commit's largest group (``group_commit_max_events``, at most
# 1,000): how many single-event requests one transaction carried.
GROUP_SIZE_BUCKETS: tuple[float, ...] = (
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
)  # fmt: skip


class Metrics:
    """The service-level instruments; record through the methods, not the raw instruments.

    Probes (`observe_outbox`, `observe_findings`) are called synchronously on every
    collection (each ``/metrics`` scrape, each OTLP export), so they must be cheap and must
    not block: return a snapshot that a background task refreshes, never query the database.
    """

    def __init__(self, meter: Meter) -> None:
        self._outbox_probe: OutboxProbe | None = None
        self._findings_probe: FindingsProbe | None = None
        self.events_accepted = meter.create_counter(
            "teamnl.events.accepted", unit="{event}", description="Events accepted by ingestion"
        )
        self.events_rejected = meter.create_counter(
            "teamnl.events.rejected", unit="{event}", description="Events refused by ingestion"
        )
        self.deadletters = meter.create_counter(
            "teamnl.deadletter",
            unit="{message}",
            description="Messages sent to a dead-letter topic",
        )
        self.outbox_parked = meter.create_counter(
            "teamnl.outbox.parked",
            unit="{row}",
            description="Outbox rows the relay could never publish, moved to outbox_parked",
        )
        self.consumer_lag = meter.create_gauge(
            "teamnl.consumer.lag", unit="{message}", description="Records behind the log end"
        )
        self.end_to_end_latency = meter.create_histogram(
            "teamnl.end_to_end.latency",
            unit="s",
            description="From event time to the consumer having processed it",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_SECONDS,
        )
        self.group_size = meter.create_histogram(
            "teamnl.ingestion.group.size",
            unit="{event}",
            description="Single-event requests committed together in one transaction (group"
            " commit)",
            explicit_bucket_boundaries_advisory=GROUP_SIZE_BUCKETS,
        )
        meter.create_observable_gauge(
            "teamnl.outbox.backlog",
            callbacks=[self._observe_backlog],
            unit="{row}",
            description="Outbox rows not yet published",
        )
        meter.create_observable_gauge(
            "teamnl.outbox.oldest_age",
            callbacks=[self._observe_oldest_age],
            unit="s",
            description="Age of the oldest unpublished outbox row",
        )
        meter.create_observable_gauge(
            "teamnl.findings.open",
            callbacks=[self._observe_findings],
            unit="{finding}",
            description="Open data-quality findings",
        )

    def event_accepted(
        self, *, service: str, event_type: str, partner: str, events: int = 1
    ) -> None:
        attributes = {"service": service, "type": event_type, "partner": partner}
        self.events_accepted.add(events, attributes)

    def event_rejected(
        self, *, service: str, event_type: str, partner: str, reason: str, events: int = 1
    ) -> None:
        attributes = {"service": service, "type": event_type, "partner": partner, "reason": reason}
        self.events_rejected.add(events, attributes)

    def deadlettered(self, *, topic: str, reason: str) -> None:
        self.deadletters.add(1, {"topic": topic, "reason": reason})

    def outbox_row_parked(self, *, service: str, topic: str, reason: str) -> None:
        self.outbox_parked.add(1, {"service": service, "topic": topic, "reason": reason})

    def set_consumer_lag(self, *, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.set(lag, {"topic": topic, "partition": str(partition)})

    def record_end_to_end_latency(self, seconds: float, *, topic: str, event_type: str) -> None:
        self.end_to_end_latency.record(max(seconds, 0.0), {"topic": topic, "type": event_type})

    def group_committed(self, *, service: str, events: int) -> None:
        """One group commit's transaction committed, with `events` single-event requests:
        one record per transaction, not per event."""
        self.group_size.record(events, {"service": service})

    def observe_outbox(self, probe: OutboxProbe) -> None:
        """Feed the outbox gauges from `probe`; a later call replaces the earlier probe."""
        self._outbox_probe = probe

    def observe_findings(self, probe: FindingsProbe) -> None:
        """Feed `teamnl.findings.open`; a later call replaces the earlier probe."""
        self._findings_probe = probe

    def _observe_backlog(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._outbox_probe is None:
            return []
        count, _age = self._outbox_probe()
        return [Observation(count)]

    def _observe_oldest_age(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._outbox_probe is None:
            return []
        _count, age_seconds = self._outbox_probe()
        return [Observation(age_seconds)]

    def _observe_findings(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._findings_probe is None:
            return []
        return [
            Observation(count, {"rule": rule, "severity": severity})
            for (rule, severity), count in self._findings_probe().items()
        ]
