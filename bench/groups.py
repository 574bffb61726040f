"""How many single-event requests each group-commit transaction carried, over one stretch
of a run: read from the services' own histogram (``teamnl.ingestion.group.size``, on their
``/metrics``) just before and just after, as an operator's dashboard reads it.

A service that served nothing meanwhile (a baseline's pass), or whose counts went back (it
was restarted in between), has no figure for that stretch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

METRIC = "teamnl_ingestion_group_size"


@dataclass(frozen=True)
class Histogram:
    """One service's group sizes so far: transactions, requests, and transactions per
    bucket's upper bound (cumulative, as Prometheus serves them)."""

    transactions: float = 0.0
    events: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


def scrape(urls: Mapping[str, str], token: str, timeout: float = 5.0) -> dict[str, Histogram]:
    """Each service's histogram (by name: its ``/metrics`` base URL), read with the metrics
    `token`; a service that does not answer is left out, one that refuses the token raises."""
    found: dict[str, Histogram] = {}
    headers = {"Authorization": f"Bearer {token}"}
    for service, url in urls.items():
        try:
            response = httpx.get(f"{url}/metrics", headers=headers, timeout=timeout)
        except httpx.TransportError:
            continue
        response.raise_for_status()
        found[service] = parse(response.text, service)
    return found


def parse(page: str, service: str) -> Histogram:
    """`service`'s group-size histogram in a Prometheus text page (empty without one)."""
    transactions = events = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(page):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("service") != service:
                continue
            if sample.name == f"{METRIC}_count":
                transactions += sample.value
            elif sample.name == f"{METRIC}_sum":
                events += sample.value
            elif sample.name == f"{METRIC}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Histogram(transactions, events, buckets)


def between(before: Mapping[str, Histogram], after: Mapping[str, Histogram]) -> dict[str, Any]:
    """What the services' group commits did from `before` to `after`: per service, its
    transactions, requests, mean requests per transaction and the median's bucket; and for
    all of them together (``all``). Empty when none committed anything."""
    stretches: dict[str, dict[str, Any]] = {}
    for service, late in after.items():
        early = before.get(service, Histogram())
        transactions = late.transactions - early.transactions
        events = late.events - early.events
        if transactions <= 0 or events < 0:
            continue  # nothing committed, or the service started again in between
        buckets = {
            bound: count - early.buckets.get(bound, 0.0) for bound, count in late.buckets.items()
        }
        stretches[service] = _summary(transactions, events, buckets)
    if not stretches:
        return {}
    transactions = sum(s["transactions"] for s in stretches.values())
    events = sum(s["events"] for s in stretches.values())
    return {"all": _summary(transactions, events, {}), "services": stretches}


def _summary(transactions: float, events: float, buckets: dict[float, float]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "transactions": int(transactions),
        "events": int(events),
        "mean": events / transactions,
    }
    if buckets:
        summary["median_at_most"] = _median_bound(transactions, buckets)
    return summary


def _median_bound(transactions: float, buckets: dict[float, float]) -> float | None:
    """The smallest bucket bound holding at least half the transactions (None: only the
    unbounded bucket does)."""
    for bound in sorted(buckets):
        if buckets[bound] >= transactions / 2:
            return None if math.isinf(bound) else bound
    return None
