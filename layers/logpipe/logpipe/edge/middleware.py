"""Event Handler middleware shared by the API functions: API-key auth, scope check, per-organization rate limit.

    @app.get("/api/logs", middlewares=[authorized(Scope.READ)])

checks the API key before anything of the request's body is touched, puts the caller's organization in
`app.context["organization_id"]` and its scopes in `app.context["scopes"]`, then decodes the body (gzip undone,
within the route's limits: LogpipeResolver.decode_body), takes from the organization's bucket and adds the
RateLimit fields to the answer: one request token on the read and admin routes; on the ingest routes (the
`ingest` scope), one token per byte of the decoded request body, before anything of it is parsed or published.
"""

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from logpipe.access import auth, ratelimit
from logpipe.access.models import KEY_PREFIX, Scope
from logpipe.config import get_settings
from logpipe.edge.body import body_size
from logpipe.edge.resolver import LogpipeResolver, with_rate_limit
from logpipe.encoding import strict_base64
from logpipe.errors import OrganizationMismatchError

Middleware = Callable[[BaseRouter, NextMiddleware], Response]


def authorized(scope: Scope) -> Middleware:
    def middleware(app: LogpipeResolver, next_middleware: NextMiddleware) -> Response:
        settings = get_settings()
        request = app.current_event.raw_event  # the API Gateway request as a dict: cheaper than its wrappers
        principal = auth.authenticate_request(_presented_key(request), _client_address(request), settings)
        auth.require_scope(principal, scope)
        _check_tenant_header(request, principal.organization_id)
        app.append_context(organization_id=principal.organization_id, scopes=principal.scopes)
        app.decode_body()
        if scope is Scope.INGEST:
            _charge(app, ratelimit.INGEST_BYTES, body_size(app.current_event.raw_event))
        else:
            _charge(app, ratelimit.REQUESTS, 1)
        return with_rate_limit(app, next_middleware(app))

    middleware.__name__ = f"authorized_{scope}"
    return middleware


def _charge(app: BaseRouter, bucket: ratelimit.Bucket, cost: int) -> None:
    """Take `cost` tokens from the caller's organization's bucket; raises RateLimitedError when refused."""
    quota = ratelimit.take_organization_tokens(app.context["organization_id"], cost, get_settings(), bucket)
    app.append_context(quota=quota)


def _presented_key(request: dict) -> str | None:
    """The API key as the client sent it: `Authorization: Bearer <key>`, `X-Api-Key: <key>`, or as log shippers
    send credentials: `Authorization: ApiKey <key>` (Elasticsearch clients; also base64 of `id:key`, the key
    being what follows the colon) and HTTP Basic with the key as the password (Loki and Fluent Bit clients)."""
    headers = request.get("headers") or {}  # HTTP API (payload 2.0) lower-cases header names
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    return _from_authorization(scheme.lower(), credentials.strip()) or headers.get("x-api-key") or None


def _from_authorization(scheme: str, credentials: str) -> str | None:
    if not credentials:
        return None
    if scheme == "bearer":
        return credentials
    if scheme == "apikey":
        return credentials if credentials.startswith(KEY_PREFIX) else _after_colon(credentials)
    if scheme == "basic":
        return _after_colon(credentials)
    return None


def _after_colon(encoded: str) -> str | None:
    """The part after the first colon of base64 `user:secret` (the secret), or None when it is not that."""
    try:
        decoded = strict_base64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    _, colon, secret = decoded.partition(":")
    return secret or None if colon else decoded or None


def _check_tenant_header(request: dict, organization_id: str) -> None:
    """Loki clients name their tenant in X-Scope-OrgID; a tenant other than the key's organization is refused."""
    tenant = ((request.get("headers") or {}).get("x-scope-orgid") or "").strip()
    if tenant and tenant != organization_id:
        raise OrganizationMismatchError(
            "X-Scope-OrgID names another organization than the API key's", details={"field": "X-Scope-OrgID"}
        )


def _client_address(request: dict) -> str:
    return request.get("requestContext", {}).get("http", {}).get("sourceIp") or "unknown"
