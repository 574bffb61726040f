"""Who may read a process's Prometheus metrics: a scraper sending the deployment's token.

The metrics name partners (events accepted and refused per partner, with reasons) and the
system's inner state, so ``/metrics`` is not public as the probes (``/healthz``,
``/readyz``) are. Every service, worker and relay process shares one token with the
scraper, ``TEAMNL_METRICS_TOKEN`` (:data:`TOKEN_LENGTH` characters), sent as
``Authorization: Bearer <token>`` (Prometheus: ``authorization.credentials_file``). A
process without one serves no metrics (403): off, not open, is the default.

A refusal is an RFC 9457 problem (:mod:`teamnl_shared.problem`), as the APIs' are; the
token is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from teamnl_shared.problem import problem_document

TOKEN_VARIABLE = "TEAMNL_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a token
TOKEN_LENGTH = (32, 256)
"""The least and most characters of a token (``secrets.token_urlsafe(32)`` gives 43)."""
_BEARER = "bearer "


@dataclass(frozen=True)
class Refusal:
    """Why a request for the metrics is refused, as its answer."""

    status: int
    kind: str
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, instance: str = "/metrics") -> bytes:
        errors = [{"field": "header/authorization", "reason": self.detail}]
        document = problem_document(
            self.status, self.kind, self.title, self.detail, errors, instance
        )
        return json.dumps(document).encode()


def refusal(authorization: str | None, token: str | None) -> Refusal | None:
    """None when ``authorization`` (the request's header) carries ``token``; else why not."""
    if token is None:
        return Refusal(
            403,
            "forbidden",
            "Metrics are off",
            f"this process serves no metrics: {TOKEN_VARIABLE} is not set",
        )
    challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if authorization is None or not authorization.lower().startswith(_BEARER):
        return Refusal(
            401,
            "unauthorized",
            "Missing metrics token",
            "send the metrics token as 'Authorization: Bearer <token>'",
            challenge,
        )
    sent = authorization[len(_BEARER) :].strip().encode()
    if not hmac.compare_digest(sent, token.encode()):
        return Refusal(
            401,
            "unauthorized",
            "Unknown metrics token",
            "the metrics token is not valid",
            challenge,
        )
    return None
