"""Route selection like API Gateway HTTP APIs: exact > path variables > greedy > $default; method > ANY."""

from __future__ import annotations

import pytest

from local.lambda_runner.http_api import RouteTable
from local.lambda_runner.sam_model import HttpRoute

pytestmark = pytest.mark.unit


def route(method: str, path: str) -> HttpRoute:
    return HttpRoute(function_id=f"{method} {path}", event_id="e", method=method, path=path)


@pytest.fixture
def table() -> RouteTable:
    return RouteTable(
        [
            route("POST", "/api/logs"),
            route("ANY", "/api/logs"),
            route("GET", "/api/logs/{id}"),
            route("GET", "/api/logs/stats"),
            route("ANY", "/api/{resource}/{id}"),
            route("GET", "/files/{proxy+}"),
            route("ANY", "/files/special/{proxy+}"),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "expected", "params"),
    [
        ("POST", "/api/logs", "POST /api/logs", None),
        ("DELETE", "/api/logs", "ANY /api/logs", None),
        ("GET", "/api/logs/stats", "GET /api/logs/stats", None),
        ("GET", "/api/logs/abc", "GET /api/logs/{id}", {"id": "abc"}),
        ("PUT", "/api/logs/abc", "ANY /api/{resource}/{id}", {"resource": "logs", "id": "abc"}),
        ("GET", "/api/keys/k1", "ANY /api/{resource}/{id}", {"resource": "keys", "id": "k1"}),
        ("GET", "/files/a/b/c.txt", "GET /files/{proxy+}", {"proxy": "a/b/c.txt"}),
        ("GET", "/files/special/x/y", "ANY /files/special/{proxy+}", {"proxy": "x/y"}),
    ],
)
def test_most_specific_route_wins(table: RouteTable, method, path, expected, params) -> None:
    matched = table.match(method, path)
    assert matched is not None
    found, path_params = matched
    assert found.route_key == expected
    assert path_params == params


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/files/a"), ("GET", "/files"), ("GET", "/api/logs/"), ("GET", "/api/a/b/c")],
)
def test_no_route(table: RouteTable, method: str, path: str) -> None:
    assert table.match(method, path) is None


def test_default_route_catches_the_rest() -> None:
    table = RouteTable(
        [route("GET", "/health"), HttpRoute(function_id="fallback", event_id="d", method="ANY", path="$default")]
    )
    assert table.match("GET", "/health")[0].function_id == "GET /health"
    found, params = table.match("PATCH", "/anything/else")
    assert (found.function_id, found.route_key, params) == ("fallback", "$default", None)
