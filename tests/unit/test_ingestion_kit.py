"""Pure parts of the ingestion kit: rate limiter, key format, problems, documents."""

from __future__ import annotations

import json

import pytest
import yaml
from asyncpg import exceptions as pg
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from teamnl_nlib.app import SERVICE as NLIB
from teamnl_nlib.app import create_app as create_nlib
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.contract.envelope import InvalidEvent, Problem
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.ingestion.auth import PartnerDep
from teamnl_shared.ingestion.keys import (
    InvalidKeyRequest,
    generate_key,
    hash_secret,
    secret_matches,
    service_event_types,
    split_key,
)
from teamnl_shared.ingestion.modes import parse_single
from teamnl_shared.ingestion.openapi import service_asyncapi
from teamnl_shared.ingestion.problems import (
    PROBLEM_JSON,
    ApiProblem,
    invalid_event,
    rate_limited,
    unavailable,
)
from teamnl_shared.ingestion.ratelimit import RateLimiter
from teamnl_shared.ingestion.routes import PartnerRoute
from teamnl_shared.ingestion.service import ServiceDefinition
from teamnl_shared.ingestion.unavailable import is_unavailable
from teamnl_shared.telemetry import redact_text
from teamnl_tinl.app import SERVICE as TINL
from teamnl_werkplaats.app import SERVICE as WERKPLAATS


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_asks_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.5, burst=2, clock=clock)
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == 2  # one token takes 2 s at 0.5/s
    assert limiter.acquire("other") is None  # buckets are per key
    clock.now += 2
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is not None


def test_token_bucket_never_exceeds_its_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    clock.now += 3600
    assert [limiter.acquire("k") for _ in range(4)][-1] == 1


def test_rate_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_key_format_and_hash() -> None:
    key, key_id, secret = generate_key()
    assert key == f"tnl_{key_id}_{secret}"
    assert split_key(key) == (key_id, secret)
    assert len(key_id) == 8 and len(secret) >= 32
    assert secret_matches(secret, hash_secret(secret))
    assert not secret_matches(secret + "x", hash_secret(secret))
    assert redact_text(f"key {key}") == "key [REDACTED]"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tnl_short_x",
        "tnl_ABCDEFGH_" + "x" * 40,
        "xyz_abcdefgh_" + "x" * 40,
        "tnl_abcdefgh_" + "x" * 10,
    ],
)
def test_malformed_keys_do_not_split(text: str) -> None:
    assert split_key(text) is None


def test_service_scope_covers_its_families() -> None:
    assert set(service_event_types("tinl")) == set(TINL.event_types)
    assert any(".globalstars." in t for t in service_event_types("tinl"))
    with pytest.raises(InvalidKeyRequest):
        service_event_types("dashboard")


def test_problem_names_the_field_and_reason() -> None:
    problem = invalid_event(InvalidEvent([Problem("data/sdgs/1", "must be <= 17")]))
    body = json.loads(problem.response("/v1/events").body)
    assert problem.response().media_type == PROBLEM_JSON
    assert body == {
        "type": "urn:teamnl:problem:invalid-event",
        "title": "The event is not valid",
        "status": 422,
        "detail": "data/sdgs/1: must be <= 17",
        "instance": "/v1/events",
        "errors": [{"field": "data/sdgs/1", "reason": "must be <= 17"}],
    }


def test_rate_limited_problem_carries_retry_after() -> None:
    assert rate_limited(3).response().headers["retry-after"] == "3"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.TooManyConnectionsError("too many clients"),
        pg.DeadlockDetectedError("deadlock detected"),
        pg.InterfaceError("connection is closed"),
    ],
    ids=type,
)
def test_database_outages_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)


def test_bugs_and_refusals_are_not_unavailable() -> None:
    assert not is_unavailable(ValueError("bug"))
    assert not is_unavailable(pg.UniqueViolationError("duplicate key"))


def test_unavailable_problem_is_503_with_retry_after_and_documented() -> None:
    response = unavailable("the database is unavailable").response("/v1/events")
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    document = create_nlib(NlibSettings(database_url="postgresql://unused/unused")).openapi()
    for path, method in [
        ("/v1/events", "post"),
        ("/v1/events:batch", "post"),
        ("/v1/missions", "get"),
    ]:
        documented = document["paths"][path][method]["responses"]["503"]
        assert "Retry-After" in documented["headers"], path


def test_a_service_must_handle_exactly_its_types() -> None:
    with pytest.raises(ValueError, match="handlers missing"):
        ServiceDefinition("nlib", "x", ("nlib",), {}, "teamnl_nlib.migrations")


@pytest.mark.parametrize("service", [NLIB, TINL, WERKPLAATS], ids=lambda s: s.name)
def test_every_type_handled_by_exactly_one_service(service: ServiceDefinition) -> None:
    others = [o for o in (NLIB, TINL, WERKPLAATS) if o.name != service.name]
    assert not set(service.event_types) & {t for o in others for t in o.event_types}


def test_openapi_documents_every_type_with_its_catalogue_example() -> None:
    app = create_nlib(NlibSettings(database_url="postgresql://unused/unused"))
    document = app.openapi()
    operation = document["paths"]["/v1/events"]["post"]
    structured = operation["requestBody"]["content"]["application/cloudevents+json"]
    binary = operation["requestBody"]["content"]["application/json"]
    assert set(structured["examples"]) == set(NLIB.event_types)
    for event_type in NLIB.event_types:
        assert structured["examples"][event_type]["value"]["data"] == spec_for(event_type).example
        assert binary["examples"][event_type]["value"] == spec_for(event_type).example
        assert f"CloudEvent.{event_type}" in document["components"]["schemas"]
    assert {"401", "403", "409", "413", "422", "429"} <= set(operation["responses"])
    assert "partnerKey" in document["components"]["securitySchemes"]


def test_asyncapi_of_a_service_holds_its_channels_only() -> None:
    settings = NlibSettings(database_url="postgresql://unused/unused", topic_prefix="p.")
    document = yaml.safe_load(service_asyncapi(TINL, settings))
    assert set(document["channels"]) == {"tinl", "globalstars"}
    assert document["channels"]["tinl"]["address"] == "p.teamnl.tinl.events"
    assert set(document["components"]["messages"]) == set(TINL.event_types)


def _structured(data_changes: dict[str, object], **attribute_changes: object) -> bytes:
    event_type = "nl.teamnl.nlib.company.supported.v1"
    document = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/partners/acme",
        "type": event_type,
        "subject": "kvk-12345678",
        "time": "2019-01-17T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {**spec_for(event_type).example, **data_changes},
        **attribute_changes,
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data_changes", "attribute_changes", "field"),
    [
        ({"company": "Van\x00Dijk"}, {}, "data/company"),
        ({}, {"teamnlnote": "a\x00b"}, "teamnlnote"),
    ],
)
def test_a_nul_character_is_refused_naming_its_field(
    data_changes: dict[str, object], attribute_changes: dict[str, object], field: str
) -> None:
    headers = {"content-type": "application/cloudevents+json"}
    body = _structured(data_changes, **attribute_changes)
    with pytest.raises(ApiProblem) as raised:
        parse_single(headers, body, 1_000_000)
    assert raised.value.status == 422
    assert [p.field for p in raised.value.errors] == [field]
    assert "NUL" in raised.value.errors[0].reason


def test_text_that_only_spells_a_nul_escape_is_accepted() -> None:
    headers = {"content-type": "application/cloudevents+json"}
    body = _structured({"company": "Van Dijk \\u0000 B.V."})
    event = parse_single(headers, body, 1_000_000)
    assert event.data_dict()["company"] == "Van Dijk \\u0000 B.V."


def test_an_events_route_refuses_an_endpoint_whose_parameters_it_would_not_pass() -> None:
    """The events routes resolve the partner themselves and pass (request, partner) alone:
    an endpoint declaring anything else is refused when declared, not served wrongly."""
    router = APIRouter(route_class=PartnerRoute)

    async def takes_a_query(request: Request, partner: PartnerDep, limit: int = 10) -> Response:
        return Response()

    with pytest.raises(TypeError, match="must take \\(request, partner\\)"):
        router.add_api_route("/x", takes_a_query, methods=["POST"])
