"""A small client of the services' public ingestion API (``POST /v1/events:batch``).

Used by the seed and by ``teamnl replay``. Each batch is answered per event (202 accepted,
200 replay of an earlier acceptance, or a problem); a request refused as a whole (401, 413,
...) counts as that problem for every event in it. A 429 is waited out (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_RATE_LIMIT_WAITS = 10


@dataclass(frozen=True)
class ItemResult:
    index: int  # position in the documents given to send()
    status: int
    problem: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status in (200, 202)

    def reason(self) -> str:
        if self.problem is None:
            return ""
        errors = self.problem.get("errors") or []
        if errors:
            return "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors)
        return str(self.problem.get("detail") or self.problem.get("title") or "")


@dataclass
class SendReport:
    accepted: int = 0
    replayed: int = 0
    failures: list[ItemResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.replayed + len(self.failures)

    def add(self, result: ItemResult) -> None:
        if result.status == 202:
            self.accepted += 1
        elif result.status == 200:
            self.replayed += 1
        else:
            self.failures.append(result)


class IngestionClient:
    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {key}", "Content-Type": BATCH_CONTENT_TYPE},
        )

    async def __aenter__(self) -> IngestionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def send(
        self,
        documents: Sequence[Any],
        *,
        batch_size: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> SendReport:
        """Send ``documents`` in batches, in order; ``on_batch(n)`` after each batch of n."""
        report = SendReport()
        for start in range(0, len(documents), batch_size):
            batch = list(documents[start : start + batch_size])
            for result in await self.send_batch(batch):
                report.add(ItemResult(start + result.index, result.status, result.problem))
            if on_batch is not None:
                on_batch(len(batch))
        return report

    async def send_batch(self, batch: list[Any]) -> list[ItemResult]:
        response = await self._post_batch(batch)
        if response.status_code != 200:
            problem = _problem(response)
            return [ItemResult(i, response.status_code, problem) for i in range(len(batch))]
        return [
            ItemResult(item["index"], item["status"], item.get("problem"))
            for item in response.json()["results"]
        ]

    async def _post_batch(self, batch: list[Any]) -> httpx.Response:
        for _ in range(MAX_RATE_LIMIT_WAITS):
            response = await self._http.post("/v1/events:batch", content=json.dumps(batch))
            if response.status_code != 429:
                return response
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        return response


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:500]}
