"""The one ingestion kit of the three initiative services.

A service declares a :class:`ServiceDefinition` (families, a handler per event type, its
migrations, its read resources) and calls :func:`create_ingestion_app`. The kit gives it the
CloudEvents HTTP API (structured, binary, batch), RFC 9457 problems, partner API keys, rate
limits, idempotent receipts, the transactional outbox and its relay, the read API,
``/healthz``, ``/readyz``, ``/metrics``, OpenAPI and AsyncAPI documents.
"""

from teamnl_shared.ingestion.app import create_ingestion_app
from teamnl_shared.ingestion.keys import (
    IssuedKey,
    Partner,
    StoredKey,
    create_key,
    ensure_key_store,
    list_keys,
    revoke_key,
)
from teamnl_shared.ingestion.problems import ApiProblem
from teamnl_shared.ingestion.service import (
    Handler,
    Rejected,
    Resource,
    ServiceDefinition,
    SetHandler,
    data_as,
)
from teamnl_shared.ingestion.settings import IngestionSettings
from teamnl_shared.problem import PROBLEM_JSON

__all__ = [
    "PROBLEM_JSON",
    "ApiProblem",
    "Handler",
    "IngestionSettings",
    "IssuedKey",
    "Partner",
    "Rejected",
    "Resource",
    "ServiceDefinition",
    "SetHandler",
    "StoredKey",
    "create_ingestion_app",
    "data_as",
    "create_key",
    "ensure_key_store",
    "list_keys",
    "revoke_key",
]
