"""Read API over a service's state tables: ``GET /v1/<resource>`` (filters, keyset paging)
and ``GET /v1/<resource>/{id}``. Each service declares its resources; the SQL is generic.

Identifiers in the SQL come from the service's declarations (checked here), never from the
request; every value from the request is a bind parameter.

Who may read: a key holding every event type of its service reads every resource; a key
limited with ``--types`` reads only the resources its types write (those whose id is a field
of one of its types' data), and answers 403 for the others.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, create_model
from starlette.requests import Request

from teamnl_shared.contract.envelope import Problem
from teamnl_shared.contract.registry import spec_for

from .auth import current_partner
from .keys import Partner, service_event_types
from .problems import ApiProblem, forbidden, not_found, openapi_responses
from .runtime import runtime_of
from .service import FilterType, Resource

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


def _quoted(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def _columns(resource: Resource) -> str:
    return ", ".join(_quoted(name) for name in resource.model.model_fields)


async def fetch_page(
    pool: asyncpg.Pool, resource: Resource, filters: dict[str, Any], after: str | None, limit: int
) -> list[asyncpg.Record]:
    given = {name: value for name, value in filters.items() if value is not None}
    conditions = [f"{_quoted(name)} = ${i}" for i, name in enumerate(given, start=1)]
    values: list[Any] = list(given.values())
    if after is not None:
        values.append(after)
        conditions.append(f"{_quoted(resource.key)} > ${len(values)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    values.append(limit)
    sql = (
        f"SELECT {_columns(resource)} FROM {_quoted(resource.table)}{where}"  # noqa: S608
        f" ORDER BY {_quoted(resource.key)} LIMIT ${len(values)}"
    )
    return list(await pool.fetch(sql, *values))


async def fetch_one(pool: asyncpg.Pool, resource: Resource, item_id: str) -> asyncpg.Record | None:
    sql = (
        f"SELECT {_columns(resource)} FROM {_quoted(resource.table)}"  # noqa: S608
        f" WHERE {_quoted(resource.key)} = $1"
    )
    return await pool.fetchrow(sql, item_id)


def may_read(partner: Partner, resource: Resource) -> bool:
    if partner.event_types >= set(service_event_types(partner.service)):
        return True
    names_a_row = resource.written_by_field or resource.key
    return any(names_a_row in spec_for(t).model.model_fields for t in partner.event_types)


def _check_scope(partner: Partner, resource: Resource) -> None:
    if not may_read(partner, resource):
        raise forbidden(
            "header/authorization",
            f"the key is limited to event types that do not write {resource.name}",
        )


def _refuse_nul(values: dict[str, Any]) -> None:
    bad = [
        Problem(f"query/{name}", "must not contain the NUL character")
        for name, value in values.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if bad:
        raise ApiProblem(422, "invalid-request", "NUL character in a parameter", bad)


def _page_model(resource: Resource) -> type[BaseModel]:
    return create_model(
        f"{resource.model.__name__}Page",
        items=(list[resource.model], ...),  # type: ignore[name-defined]
        next_after=(str | None, None),
    )


def _item(resource: Resource, record: asyncpg.Record) -> dict[str, Any]:
    return resource.model.model_validate(dict(record.items())).model_dump(mode="json")


def _filter_annotation(name: str, kind: FilterType) -> Any:
    if kind is int:  # the state columns are PostgreSQL int (32 bits)
        return Annotated[int | None, Query(ge=INT4_MIN, le=INT4_MAX, description=f"equals {name}")]
    if kind is str:
        return Annotated[str | None, Query(max_length=500, description=f"equals {name}")]
    return Annotated[kind | None, Query(description=f"equals {name}")]


def _list_endpoint(resource: Resource) -> Any:
    async def list_items(
        request: Request, partner: Partner, limit: int, after: str | None, **filters: Any
    ) -> dict[str, Any]:
        _check_scope(partner, resource)
        _refuse_nul({**filters, "after": after})
        pool = runtime_of(request).pool
        records = await fetch_page(pool, resource, filters, after, limit + 1)
        items = [_item(resource, record) for record in records[:limit]]
        more = len(records) > limit
        return {"items": items, "next_after": items[-1][resource.key] if more else None}

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("request", keyword, annotation=Request),
        inspect.Parameter("partner", keyword, annotation=Annotated[Any, Depends(current_partner)]),
        inspect.Parameter(
            "limit",
            keyword,
            default=DEFAULT_LIMIT,
            annotation=Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")],
        ),
        inspect.Parameter(
            "after",
            keyword,
            default=None,
            annotation=Annotated[
                str | None,
                Query(max_length=200, description="the `next_after` of the previous page"),
            ],
        ),
    ]
    parameters += [
        inspect.Parameter(name, keyword, default=None, annotation=_filter_annotation(name, kind))
        for name, kind in resource.filters.items()
    ]
    list_items.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return list_items


def _get_endpoint(resource: Resource) -> Any:
    async def get_item(request: Request, item_id: str, partner: Partner) -> dict[str, Any]:
        _check_scope(partner, resource)
        _refuse_nul({resource.key: item_id})
        record = await fetch_one(runtime_of(request).pool, resource, item_id)
        if record is None:
            raise not_found(f"{resource.name}/{item_id}")
        return _item(resource, record)

    keyword = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [
            inspect.Parameter("request", keyword, annotation=Request),
            inspect.Parameter(
                "partner", keyword, annotation=Annotated[Any, Depends(current_partner)]
            ),
            inspect.Parameter(
                "item_id",
                keyword,
                annotation=Annotated[str, Path(alias=resource.key, max_length=200)],
            ),
        ]
    )
    get_item.__signature__ = signature  # type: ignore[attr-defined]
    return get_item


def read_router(resources: tuple[Resource, ...]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["state"])
    for resource in resources:
        for name in (resource.table, resource.key, *resource.filters):
            _quoted(name)
        router.add_api_route(
            f"/{resource.name}",
            _list_endpoint(resource),
            methods=["GET"],
            response_model=_page_model(resource),
            summary=f"List {resource.name}",
            description=resource.description,
            responses=openapi_responses(401, 403, 422, 429, 503),
            name=f"list_{resource.name}",
        )
        router.add_api_route(
            f"/{resource.name}/{{{resource.key}}}",
            _get_endpoint(resource),
            methods=["GET"],
            response_model=resource.model,
            summary=f"One of {resource.name}",
            responses=openapi_responses(401, 403, 404, 422, 429, 503),
            name=f"get_{resource.name}",
        )
    return router
