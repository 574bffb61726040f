"""Authentication and authorisation of a request: ``Authorization: Bearer tnl_...``.

401: no key, a malformed, unknown or revoked key (revocation takes effect within
``key_cache_seconds``, see :mod:`.keycache`). 403: the key belongs to another service.
429: the key's token bucket is empty. Event-level scope (type, source) is checked per event
by the pipeline, so a batch answers 403 for the events outside the scope only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from .keys import Partner
from .problems import forbidden, rate_limited, unauthorized
from .runtime import runtime_of

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="partnerKey",
    bearerFormat="tnl_<key id>_<secret>",
    description="The partner's API key, issued with `teamnl-keys create`.",
)


async def current_partner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Partner:
    runtime = runtime_of(request)
    if credentials is None:
        raise unauthorized("send the API key as 'Authorization: Bearer tnl_...'")
    partner = await runtime.keys.partner(runtime.keys_pool, credentials.credentials)
    if partner is None:
        raise unauthorized("unknown or revoked API key")
    request.state.partner = partner.partner
    if partner.service != runtime.service.name:
        raise forbidden(
            "header/authorization",
            f"the key is for the {partner.service} service, not {runtime.service.name}",
        )
    retry_after = runtime.limiter.acquire(partner.key_id)
    if retry_after is not None:
        raise rate_limited(retry_after)
    return partner


PartnerDep = Annotated[Partner, Depends(current_partner)]


async def partner_of(request: Request) -> Partner:
    """`PartnerDep` resolved without FastAPI's dependency solving (the events routes,
    `routes.PartnerRoute`): the same chain, the bearer credentials then `current_partner`."""
    return await current_partner(request, await bearer(request))
