"""How the ingestion kit counts a batch's answers: each in its partner's data quality, and
in the metrics one addition per type, status and reason (no database: counting is in
memory)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from teamnl_nlib.app import SERVICE
from teamnl_shared.contract.ops import PartnerQualityReported
from teamnl_shared.ingestion.runtime import Answer, Runtime
from teamnl_shared.ingestion.settings import IngestionSettings
from teamnl_shared.telemetry import setup_telemetry

HELD = "nl.teamnl.nlib.mission.held.v1"
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, ...], int]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, ...], int] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        labels = point.attributes or {}
                        key = (str(labels["type"]), str(labels.get("reason", "")))
                        found[key] = int(point.value)  # type: ignore[union-attr]
    return found


def test_a_batch_is_counted_per_event_in_quality_and_per_kind_in_the_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = InMemoryMetricReader()
    telemetry = setup_telemetry("nlib", "1", "test", metric_reader=reader)
    settings = IngestionSettings(database_url="postgresql://x/y", environment="test")
    runtime = Runtime(settings, SERVICE, metrics=telemetry.metrics)
    additions: Counter[str] = Counter()
    for name in ("events_accepted", "events_rejected"):
        counter = getattr(telemetry.metrics, name)
        add = counter.add

        def counted(amount: int, attributes: object, add: object = add, name: str = name) -> None:
            additions[name] += 1
            add(amount, attributes)  # type: ignore[operator]

        monkeypatch.setattr(counter, "add", counted)

    answers = [
        *[Answer(HELD, 202, "", AN_HOUR_AGO)] * 3,
        Answer(PLANNED, 202, "", AN_HOUR_AGO),
        Answer(HELD, 200, "", AN_HOUR_AGO),
        *[Answer("unknown", 422, "invalid-event", None)] * 2,
        Answer(PLANNED, 403, "forbidden", AN_HOUR_AGO),
    ]
    runtime.count_all("rvo", answers)

    assert points(reader, "teamnl.events.accepted") == {(HELD, ""): 3, (PLANNED, ""): 1}
    assert points(reader, "teamnl.events.rejected") == {
        ("unknown", "invalid-event"): 2,
        (PLANNED, "forbidden"): 1,
    }
    assert additions == {"events_accepted": 2, "events_rejected": 2}
    [report] = runtime.quality.take()
    assert isinstance(report.data, PartnerQualityReported)
    quality = report.data
    assert (quality.accepted, quality.replayed) == (4, 1)
    assert quality.rejected == {"invalid-event": 2, "forbidden": 1}
    assert quality.lateness_samples == 4
    assert quality.lateness_p50_seconds is not None and quality.lateness_p50_seconds >= 3600
    telemetry.shutdown()
