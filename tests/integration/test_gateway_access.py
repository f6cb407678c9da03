"""Who may call what: every /api route x {no key, bad key, revoked key, wrong scope, other tenant}, and the same
refusals for requests the schema would also refuse (the key is judged before the parameters and body)."""

import uuid
from dataclasses import dataclass

import pytest

from logpipe.access import auth, keys
from logpipe.access.models import Scope
from logpipe.config import get_settings
from tests.integration.gateway_helpers import answer, make_event, store


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str  # {event} and {key} are filled in per test
    scope: Scope
    body: dict | None = None


ROUTES = [
    Route("gateway", "GET", "/api/logs", Scope.READ),
    Route("gateway", "GET", "/api/logs/{event}", Scope.READ),
    Route("gateway", "GET", "/api/logs/{event}/status", Scope.READ),
    Route("gateway", "GET", "/api/stats", Scope.READ),
    Route("gateway", "POST", "/api/keys", Scope.ADMIN, {"scopes": ["read"], "name": "matrix"}),
    Route("gateway", "GET", "/api/keys", Scope.ADMIN),
    Route("gateway", "DELETE", "/api/keys/{key}", Scope.ADMIN),
    Route("producer", "POST", "/api/logs", Scope.INGEST, {"level": "INFO", "message": "m", "source": "s"}),
    Route("producer", "POST", "/api/logs/batch", Scope.INGEST, [{"level": "INFO", "message": "m", "source": "s"}]),
]
ROUTE_IDS = [f"{route.method} {route.path}" for route in ROUTES]
READ_AND_ADMIN_ROUTES = [route for route in ROUTES if route.function == "gateway"]


@dataclass(frozen=True)
class Invalid:
    """A request to `route` that its schema refuses, and the answer it gets from a caller allowed to call it."""

    route: Route
    why: str
    status: int
    path: str | None = None
    query: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    body: str | None = None  # sent as is, with content_type
    content_type: str = "application/json"


BY_ROUTE = dict(zip(ROUTE_IDS, ROUTES, strict=True))
INVALID = [
    Invalid(BY_ROUTE["GET /api/logs"], "limit and level out of range", 422, query={"limit": "0", "level": "LOUD"}),
    Invalid(BY_ROUTE["GET /api/logs/{event}"], "event id not a UUID", 422, path="/api/logs/not-a-uuid"),
    Invalid(BY_ROUTE["GET /api/logs/{event}/status"], "event id not a UUID", 422, path="/api/logs/x/status"),
    Invalid(BY_ROUTE["GET /api/stats"], "from not a time", 422, query={"from": "yesterday"}),
    Invalid(BY_ROUTE["POST /api/keys"], "body not JSON", 400, body='{"scopes": ['),
    Invalid(BY_ROUTE["POST /api/keys"], "unknown scope", 422, body='{"scopes": ["root"]}'),
    Invalid(BY_ROUTE["DELETE /api/keys/{key}"], "key id not a UUID", 422, path="/api/keys/42"),
    Invalid(BY_ROUTE["POST /api/logs"], "body breaks the schema", 422, body='{"level": "LOUD", "message": 7}'),
    Invalid(BY_ROUTE["POST /api/logs"], "body not JSON", 400, body="{"),
    Invalid(BY_ROUTE["POST /api/logs"], "body an array", 422, body="[]"),
    Invalid(BY_ROUTE["POST /api/logs"], "body not a JSON type", 415, body="level=INFO", content_type="text/plain"),
    Invalid(BY_ROUTE["POST /api/logs"], "NaN in the body", 400, body='{"message": NaN}'),
    Invalid(BY_ROUTE["POST /api/logs/batch"], "empty Idempotency-Key", 422, headers={"Idempotency-Key": ""}),
    Invalid(BY_ROUTE["POST /api/logs/batch"], "body not JSON", 400, body="{"),
]
INVALID_IDS = [f"{invalid.route.method} {invalid.route.path}: {invalid.why}" for invalid in INVALID]


@pytest.fixture
def tenant(organization_id: str):
    """An organization with one stored event and one spare key (a DELETE target)."""
    event = store(make_event(organization_id, minutes_ago=1))[0]
    spare = keys.create_key(organization_id, [Scope.READ], "spare")
    return organization_id, event, spare


@pytest.fixture
def call(request, api_request, lambda_context):
    def invoke(route: Route, tenant, headers: dict[str, str], invalid: Invalid | None = None) -> tuple[int, dict, dict]:
        organization_id, event, spare = tenant
        path = route.path.format(event=event.id, key=spare.id)
        body = _with_organization(route.body, organization_id) if route.function == "producer" else route.body
        # A fresh client address per call: these tests are not about the failed-authentication limit.
        source_ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
        if invalid is not None:
            path, headers = invalid.path or path, {**headers, **(invalid.headers or {})}
        query = invalid.query if invalid else None
        event_in = api_request(route.method, path, headers=headers, query=query, body=body, source_ip=source_ip)
        if invalid is not None and invalid.body is not None:
            event_in["body"], event_in["headers"]["content-type"] = invalid.body, invalid.content_type
        function = request.getfixturevalue(f"{route.function}_function")
        return answer(function, event_in, lambda_context)

    return invoke


def _with_organization(body: dict | list | None, organization_id: str) -> dict | list | None:
    if isinstance(body, list):
        return [{**item, "organizationId": organization_id} for item in body]
    return None if body is None else {**body, "organizationId": organization_id}


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_no_key_is_401(route: Route, call, tenant) -> None:
    status, headers, body = call(route, tenant, {})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_an_unknown_key_is_401(route: Route, call, tenant) -> None:
    status, _, body = call(route, tenant, {"X-Api-Key": "lp_" + uuid.uuid4().hex})
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_revoked_key_is_401(route: Route, call, tenant, auth_headers, api_request, gateway_function, lambda_context):
    organization_id = tenant[0]
    admin = auth_headers(organization_id, "admin")
    doomed = keys.create_key(organization_id, list(Scope), "doomed")
    revoke = api_request("DELETE", f"/api/keys/{doomed.id}", headers=admin)
    assert answer(gateway_function, revoke, lambda_context)[0] == 204

    status, _, body = call(route, tenant, {"Authorization": f"Bearer {doomed.key}"})
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_key_without_the_scope_is_403(route: Route, call, tenant, auth_headers) -> None:
    other_scopes = ",".join(scope for scope in Scope if scope != route.scope)
    status, _, body = call(route, tenant, auth_headers(tenant[0], other_scopes))
    assert (status, body["error"]["code"]) == (403, "forbidden")


# The ingest route's tenancy rule (a body naming another organization: 403) is the ingest logic's, tested there.
@pytest.mark.parametrize("invalid", INVALID, ids=INVALID_IDS)
def test_an_invalid_request_without_a_key_is_401(invalid: Invalid, call, tenant) -> None:
    status, _, body = call(invalid.route, tenant, {}, invalid)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("invalid", INVALID, ids=INVALID_IDS)
def test_an_invalid_request_with_an_unknown_key_is_401(invalid: Invalid, call, tenant) -> None:
    status, _, body = call(invalid.route, tenant, {"X-Api-Key": "lp_" + uuid.uuid4().hex}, invalid)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("invalid", INVALID, ids=INVALID_IDS)
def test_an_invalid_request_with_a_key_without_the_scope_is_403(invalid: Invalid, call, tenant, auth_headers) -> None:
    other_scopes = ",".join(scope for scope in Scope if scope != invalid.route.scope)
    status, _, body = call(invalid.route, tenant, auth_headers(tenant[0], other_scopes), invalid)
    assert (status, body["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize("invalid", INVALID, ids=INVALID_IDS)
def test_an_invalid_request_with_the_right_key_gets_its_4xx(invalid: Invalid, call, tenant, auth_headers) -> None:
    """The positive control of the three above: these requests are refused for what they hold, once let in."""
    status, headers, body = call(invalid.route, tenant, auth_headers(tenant[0], invalid.route.scope), invalid)
    assert (status, body["status"]) == (invalid.status, "error")
    policy = "ingest-bytes" if invalid.route.scope == "ingest" else "org"  # ingest is charged its body's bytes
    assert headers["RateLimit"].startswith(f'"{policy}";r='), "an answer after a token was taken carries the fields"


@pytest.mark.parametrize("route", READ_AND_ADMIN_ROUTES, ids=[f"{r.method} {r.path}" for r in READ_AND_ADMIN_ROUTES])
def test_another_tenant_sees_none_of_the_data(route: Route, call, tenant, auth_headers) -> None:
    """A key of another organization with every scope: nothing of `tenant` is read, counted, listed or revoked."""
    status, headers, body = call(route, tenant, auth_headers(f"other-{uuid.uuid4().hex[:8]}"))
    organization_id, _event, spare = tenant
    assert headers["RateLimit"].startswith('"org";r='), "every answer after the rate limit, a 404 too"
    match route.path:
        case "/api/logs":
            assert (status, body["items"]) == (200, [])
        case "/api/stats":
            assert (status, body["total"], body["byLevel"]) == (200, 0, {})
        case "/api/keys" if route.method == "GET":
            assert status == 200
            assert organization_id not in {key["organizationId"] for key in body["items"]}
        case "/api/keys":
            assert status == 201
            assert body["organizationId"] != organization_id
        case _:
            assert (status, body["error"]["code"]) == (404, "not_found")
    assert auth.authenticate(spare.key, get_settings()).organization_id == organization_id  # not revoked


def test_the_tenants_own_key_reads_its_data(call, tenant, auth_headers) -> None:
    """The positive control of the matrix: the same routes answer the owner."""
    organization_id, event, _spare = tenant
    headers = auth_headers(organization_id)
    assert call(ROUTES[1], tenant, headers)[2]["id"] == str(event.id)
    assert call(ROUTES[2], tenant, headers)[2]["status"] == "stored"
    assert call(ROUTES[3], tenant, headers)[2]["total"] == 1
    assert call(ROUTES[6], tenant, headers)[0] == 204
