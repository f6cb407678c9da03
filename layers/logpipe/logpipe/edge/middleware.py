"""Event Handler middleware shared by the API functions: API-key auth, scope check, per-organization rate limit.

    @app.get("/api/logs", middlewares=[authorized(Scope.READ)])

puts the caller's organization in `app.context["organization_id"]` and its scopes in `app.context["scopes"]`,
takes one token from the organization's bucket and adds the RateLimit fields to the answer. A route whose cost
is known only after parsing (a batch) registers `authorized(Scope.INGEST, charge_one=False)` and calls
`charge(app, cost)` itself.
"""

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from logpipe.access import auth, ratelimit
from logpipe.access.models import Scope
from logpipe.config import get_settings
from logpipe.edge.resolver import with_rate_limit

Middleware = Callable[[BaseRouter, NextMiddleware], Response]


def authorized(scope: Scope, *, charge_one: bool = True) -> Middleware:
    def middleware(app: BaseRouter, next_middleware: NextMiddleware) -> Response:
        settings = get_settings()
        request = app.current_event.raw_event  # the API Gateway request as a dict: cheaper than its wrappers
        principal = auth.authenticate_request(_presented_key(request), _client_address(request), settings)
        auth.require_scope(principal, scope)
        app.append_context(organization_id=principal.organization_id, scopes=principal.scopes)
        if charge_one:
            charge(app, 1)
        return with_rate_limit(app, next_middleware(app))

    middleware.__name__ = f"authorized_{scope}"
    return middleware


def charge(app: BaseRouter, cost: int) -> None:
    """Take `cost` tokens (events) from the caller's organization; raises RateLimitedError when refused."""
    quota = ratelimit.take_organization_tokens(app.context["organization_id"], cost, get_settings())
    app.append_context(quota=quota)


def _presented_key(request: dict) -> str | None:
    headers = request.get("headers") or {}  # HTTP API (payload 2.0) lower-cases header names
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def _client_address(request: dict) -> str:
    return request.get("requestContext", {}).get("http", {}).get("sourceIp") or "unknown"
