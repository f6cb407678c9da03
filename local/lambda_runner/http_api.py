"""The API Gateway HTTP API stand-in: route matching and a raw ASGI app served by uvicorn.

Route selection follows API Gateway: an exact route beats one with path variables, which beats a greedy
``{proxy+}`` route, which beats ``$default``; a route for the request's method beats ``ANY``. No match: 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .events import (
    HTTP_MAX_BODY_BYTES,
    LAMBDA_MAX_EVENT_BYTES,
    ApiInfo,
    InvalidResponse,
    build_http_event,
    map_http_response,
    new_apigw_request_id,
)
from .metrics import exposition, instruments
from .sam_model import HttpRoute
from .throttling import TOO_MANY_REQUESTS_BODY, TokenBucket
from .workers import DEFAULT_INSTANCE_WAIT_S, FunctionPool, InvokeResult

log = logging.getLogger("runner")

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class _Compiled:
    route: HttpRoute
    regex: re.Pattern[str]
    names: tuple[str, ...]
    sort_key: tuple[int, int, int, int]


class RouteTable:
    def __init__(self, routes: list[HttpRoute]) -> None:
        self.exact: dict[tuple[str, str], HttpRoute] = {}
        self.patterns: list[_Compiled] = []
        self.default: HttpRoute | None = None
        for route in routes:
            if route.path == "$default":
                self.default = route
            elif "{" not in route.path:
                self.exact[(route.method, route.path)] = route
            else:
                self.patterns.append(_compile(route))
        self.patterns.sort(key=lambda c: c.sort_key)

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str] | None] | None:
        route = self.exact.get((method, path)) or self.exact.get(("ANY", path))
        if route is not None:
            return route, None
        for compiled in self.patterns:
            if compiled.route.method != method and compiled.route.method != "ANY":
                continue
            m = compiled.regex.fullmatch(path)
            if m is not None:
                return compiled.route, dict(zip(compiled.names, m.groups(), strict=True))
        if self.default is not None:
            return self.default, None
        return None

    def routes(self) -> list[HttpRoute]:
        default = [self.default] if self.default is not None else []
        return [*self.exact.values(), *(c.route for c in self.patterns), *default]


def _compile(route: HttpRoute) -> _Compiled:
    parts: list[str] = []
    names: list[str] = []
    literals = 0
    greedy = False
    segments = route.path.strip("/").split("/")
    for i, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("+}") and i == len(segments) - 1:
            names.append(segment[1:-2])
            parts.append("(.+)")
            greedy = True
        elif segment.startswith("{") and segment.endswith("}"):
            names.append(segment[1:-1])
            parts.append("([^/]+)")
        else:
            literals += 1
            parts.append(re.escape(segment))
    regex = re.compile("/" + "/".join(parts))
    sort_key = (int(greedy), -literals, -len(segments), int(route.method == "ANY"))
    return _Compiled(route, regex, tuple(names), sort_key)


def _message(text: str) -> bytes:
    return json.dumps({"message": text}, separators=(",", ":")).encode()


BAD_REQUEST = (400, _message("Bad Request"))
NOT_FOUND = (404, _message("Not Found"))
TOO_MANY_REQUESTS = (429, TOO_MANY_REQUESTS_BODY)
TOO_LARGE = (413, _message("Request Entity Too Large"))
# Also what an HTTP API answers when Lambda throttles the integration (its log says "Rate Exceeded.").
INTERNAL_ERROR = (500, _message("Internal Server Error"))
# A response over Lambda's 6 MB limit (Function.ResponseSizeTooLarge): API Gateway answers 502 when the function ran
# but its invocation failed (AWS Lambda developer guide, "Handling Lambda errors with an API Gateway API").
BAD_GATEWAY = (502, _message("Internal Server Error"))
SERVICE_UNAVAILABLE = (503, _message("Service Unavailable"))
# A Lambda timeout. (A real HTTP API answers a function timeout with 500 and its own 30 s integration timeout
# with 503; the runner makes a timeout recognisable as 504, like a REST API's "Endpoint request timed out".)
TIMED_OUT = (504, _message("Endpoint request timed out"))

_DROP_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})

Send = Callable[[dict[str, Any]], Awaitable[None]]


class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except that a request it cannot parse (malformed, or a request line or headers
    longer than the parser takes) is answered 400 in API Gateway's JSON shape, like every other refusal of the front,
    instead of uvicorn's plain text."""

    def send_400_response(self, msg: str) -> None:
        status, body = BAD_REQUEST
        head = [f"HTTP/1.1 {status} Bad Request".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close"]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


class HttpApiApp:
    """Raw ASGI application: request -> API Gateway v2 event -> function pool -> HTTP response.

    ``metrics_path`` (e.g. ``/metrics``): ``GET`` there answers the runner's Prometheus exposition, an operator
    endpoint of the runner, not an API route; the caller passes it only when no template route matches it.
    """

    def __init__(
        self,
        table: RouteTable,
        pools: dict[str, FunctionPool],
        api: ApiInfo,
        *,
        instance_wait_s: float = DEFAULT_INSTANCE_WAIT_S,
        metrics_path: str | None = None,
    ) -> None:
        self.table = table
        self.pools = pools
        self.api = api
        self.instance_wait_s = instance_wait_s
        self.buckets = {route: TokenBucket(route.throttle) for route in table.routes() if route.throttle is not None}
        self.metrics_path = metrics_path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":  # pragma: no cover - uvicorn runs with lifespan="off"
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        if path == self.metrics_path and method == "GET":
            await _serve_metrics(send)
            return
        apigw_id = new_apigw_request_id()
        matched = self.table.match(method, path)
        if matched is None:
            route, outcome = None, _Outcome(*NOT_FOUND, detail="no route")
        else:
            route, path_params = matched
            outcome = await self._answer(route, path_params, scope, receive, apigw_id)
        await _send_answer(send, outcome, apigw_id)
        elapsed = time.perf_counter() - started
        function_id, route_key = (route.function_id, route.route_key) if route else ("", "")
        instruments().http_request(function_id, route_key, outcome.status, elapsed)
        _log_request(function_id or "-", method, path, outcome, elapsed, apigw_id)

    async def _answer(
        self,
        route: HttpRoute,
        path_params: dict[str, str] | None,
        scope: dict[str, Any],
        receive: Any,
        apigw_id: str,
    ) -> _Outcome:
        """The answer to a request for ``route``: stage throttle, body and event limits, then the function's."""
        bucket = self.buckets.get(route)
        if bucket is not None and not bucket.take():
            return _Outcome(*TOO_MANY_REQUESTS, logged=False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        body = await _read_body(receive, headers)
        if body is None:
            return _Outcome(*TOO_LARGE, detail=f"body over {HTTP_MAX_BODY_BYTES} bytes")
        event = self._event(route, path_params, scope, headers, body, apigw_id)
        # A JSON body is escaped into the event: for a batch of 700-byte events, 1.0 µs per event against
        # json.dumps's 2.6.
        event_json = pydantic_core.to_json(event)
        if len(event_json) > LAMBDA_MAX_EVENT_BYTES:
            return _Outcome(*TOO_LARGE, detail="event over the Lambda payload limit")
        return _integration_answer(route, await self._invoke(route, event_json))

    def _event(
        self,
        route: HttpRoute,
        path_params: dict[str, str] | None,
        scope: dict[str, Any],
        headers: list[tuple[str, str]],
        body: bytes,
        apigw_id: str,
    ) -> dict[str, Any]:
        raw_path = scope.get("raw_path")
        client = scope.get("client")
        server = scope.get("server")
        return build_http_event(
            method=scope["method"],
            raw_path=raw_path.decode("latin-1") if raw_path else scope["path"],
            query_string=scope["query_string"].decode("latin-1"),
            headers=headers,
            body=body,
            route_key=route.route_key,
            path_parameters=path_params,
            source_ip=client[0] if client else "127.0.0.1",
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
            request_id=apigw_id,
            api=self.api,
            server_port=server[1] if server else None,
            scheme=scope.get("scheme", "http"),
        )

    async def _invoke(self, route: HttpRoute, event_json: bytes) -> InvokeResult | None:
        """The function's result, or None when API Gateway's integration timeout comes first."""
        pool = self.pools[route.function_id]
        integration_timeout = route.timeout_ms / 1000
        if integration_timeout >= pool.spec.timeout_s:
            return await pool.invoke(event_json, instance_wait_s=self.instance_wait_s)
        # API Gateway gives up after its integration timeout; the function keeps running until its own.
        task = asyncio.ensure_future(pool.invoke(event_json, instance_wait_s=self.instance_wait_s))
        try:
            return await asyncio.wait_for(asyncio.shield(task), integration_timeout)
        except TimeoutError:
            return None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one request is answered and logged."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] | None = None  # the function's response headers; None: a JSON error answer
    detail: str = ""  # why the request failed, logged at INFO; "": logged at DEBUG
    logged: bool = True  # False for stage throttling's 429s: counted in the metrics, not logged
    request_id: str | None = None  # the invocation's request id, when the function ran


def _integration_answer(route: HttpRoute, result: InvokeResult | None) -> _Outcome:
    """What API Gateway answers for the function's result (None: the integration timed out)."""
    if result is None:
        return _Outcome(*SERVICE_UNAVAILABLE, detail="integration timeout")
    if not result.ok:
        status, body = {"timeout": TIMED_OUT, "too_large": BAD_GATEWAY}.get(result.status, INTERNAL_ERROR)
        error = result.error or {}
        detail = f"{error.get('errorType')}: {error.get('errorMessage')}"
        return _Outcome(status, body, detail=detail, request_id=result.request_id)
    try:
        status, headers, payload = map_http_response(result.result)
    except InvalidResponse as exc:
        log.error("%s: malformed Lambda proxy response: %s", route.function_id, exc)
        return _Outcome(*INTERNAL_ERROR, request_id=result.request_id)
    raw_headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in headers
        if name.lower() not in _DROP_RESPONSE_HEADERS
    ]
    return _Outcome(status, payload, headers=raw_headers, request_id=result.request_id)


async def _send_answer(send: Send, outcome: _Outcome, apigw_id: str) -> None:
    headers = [
        *([_JSON] if outcome.headers is None else outcome.headers),
        (b"content-length", str(len(outcome.body)).encode()),
        (b"apigw-requestid", apigw_id.encode()),
    ]
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": outcome.body})


def _log_request(function_id: str, method: str, path: str, outcome: _Outcome, elapsed: float, apigw_id: str) -> None:
    """One line per failed request; successful ones only at DEBUG (formatting a line per request costs more than
    routing it)."""
    if not outcome.logged:
        return
    level = logging.INFO if outcome.detail else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s %s -> %d %.1fms%s",
            function_id,
            method,
            path,
            outcome.status,
            elapsed * 1000,
            f" {outcome.detail}" if outcome.detail else "",
            extra={"request_id": outcome.request_id, "correlation_id": apigw_id},
        )


async def _serve_metrics(send: Send) -> None:
    body, content_type = await asyncio.to_thread(exposition)  # reads every process's files: off the loop
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, headers: list[tuple[str, str]]) -> bytes | None:
    """The request body, or None when it is larger than API Gateway accepts."""
    for name, value in headers:
        if name == "content-length":
            try:
                if int(value) > HTTP_MAX_BODY_BYTES:
                    return None
            except ValueError:
                pass
            break
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > HTTP_MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
