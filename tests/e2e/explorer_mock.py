"""A stand-in for the gateway's read API, to develop and test the log explorer page without the services.

It serves `functions/gateway/explore/` at `/explore` (the page) and `/explore/<file>` (its assets) and fakes, with
the exact shapes the page relies on, the routes it calls:

- `GET /api/logs?level=&level=&source=&from=&to=&q=&limit=&cursor=` -> `{"items": [event...], "nextCursor": str|null}`
- `GET /api/logs/histogram?from=&to=&level=&source=&q=&buckets=` ->
  `{"from", "to", "bucketSeconds", "buckets": [{"start", "counts": {level: n}}]}`
- `GET /api/logs/{id}` -> event; `GET /api/logs/{id}/context?before=&after=` -> `{"before", "event", "after"}`
- `GET /api/logs/{id}/status` -> `{"id", "status", "reason"?}`

Errors are `{"status": "error", "error": {"code", "message", "details"}}`: 401 for a missing or unknown key, 403 for
`INGEST_ONLY_KEY`, 404, 400 for unusable parameters.

The data is deterministic so a test can name the rows it expects without asking the mock: event `i` (0..count-1)
has id `event_id(i)`, timestamp `base - i * 10 s`, level `LEVEL_CYCLE[i % 10]`, source `SOURCES[i % 3]`; ERROR and
FATAL messages contain the word "timeout", the others do not.

Standalone, for trying the page by hand: `python tests/e2e/explorer_mock.py [--port 8099]`, then open
http://127.0.0.1:8099/explore and sign in with `read-key`. `POST /__mock/events` (no key) adds a new event now,
for watching live tail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import re
import threading
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPLORE_DIR = REPO_ROOT / "functions" / "gateway" / "explore"

READ_KEY = "read-key"
INGEST_ONLY_KEY = "ingest-only-key"
ORGANIZATION = "acme"
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LEVEL_CYCLE = ("INFO", "INFO", "DEBUG", "WARN", "INFO", "ERROR", "INFO", "TRACE", "INFO", "FATAL")
SOURCES = ("api", "worker", "billing")
STEP = timedelta(seconds=10)
QUEUED_ID = "11111111-1111-4111-8111-111111111111"
DEAD_ID = "22222222-2222-4222-8222-222222222222"
DEAD_REASON = "message exceeds 32768 bytes"


def event_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time zone is required")
    return moment


def _message(i: int, level: str, source: str) -> tuple[str, dict[str, Any]]:
    if level in ("ERROR", "FATAL"):
        return (
            f"upstream timeout calling {SOURCES[(i + 1) % 3]} after {3000 + i} ms",
            {"http": {"method": "POST", "path": f"/orders/{i}", "status": 504}, "attempt": i % 4 + 1, "retry": True},
        )
    if level == "WARN":
        return (f"slow query on orders took {200 + i} ms", {"db": {"table": "orders", "rows": i * 3}, "slow": True})
    if level == "DEBUG":
        return (f"cache miss for customer {i}", {"cache": "customers", "key": f"c-{i}"})
    if level == "TRACE":
        return (f"entering handler step {i % 7}", {"step": i % 7})
    return (
        f"GET /orders/{i} answered 200 in {i % 90 + 3} ms",
        {"http": {"method": "GET", "path": f"/orders/{i}", "status": 200}, "user": f"u-{i % 17}", "source": source},
    )


class Store:
    """The fake organization's events, newest first, and the receipts the status route knows."""

    def __init__(self, count: int = 250, base: datetime | None = None) -> None:
        self.base = base or datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = [self._event(i) for i in range(count)]
        self.added = 0
        self.requests: list[str] = []

    def _event(self, i: int) -> dict[str, Any]:
        level, source = LEVEL_CYCLE[i % 10], SOURCES[i % 3]
        message, attributes = _message(i, level, source)
        moment = self.base - i * STEP
        return {
            "id": event_id(i),
            "organizationId": ORGANIZATION,
            "level": level,
            "message": message,
            "source": source,
            "timestamp": iso(moment),
            "receivedAt": iso(moment + timedelta(milliseconds=40)),
            "attributes": attributes,
            "traceId": f"{i:032x}" if level in ("ERROR", "FATAL", "WARN") else None,
            "spanId": f"{i:016x}" if level in ("ERROR", "FATAL", "WARN") else None,
        }

    def add_event(
        self,
        level: str = "INFO",
        message: str = "live event",
        source: str = "api",
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new event timestamped now (ids 00000000-0000-4000-9000-...), as if just stored."""
        with self.lock:
            self.added += 1
            now = datetime.now(UTC)
            event = {
                "id": f"00000000-0000-4000-9000-{self.added:012d}",
                "organizationId": ORGANIZATION,
                "level": level,
                "message": message,
                "source": source,
                "timestamp": iso(now),
                "receivedAt": iso(now),
                "attributes": attributes or {"live": True},
                "traceId": None,
                "spanId": None,
            }
            self.events.insert(0, event)
            return event

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return sorted(self.events, key=lambda e: (e["timestamp"], e["id"]), reverse=True)


def _text_matches(message: str, q: str) -> bool:
    """A rough websearch_to_tsquery: words and "phrases" must occur, -word / -"phrase" must not."""
    text = message.lower()
    for negated, phrase, word in re.findall(r'(-?)(?:"([^"]*)"|(\S+))', q.lower()):
        term = phrase or word
        if not term or term == "or":
            continue
        found = re.search(r"(?<![\w])" + re.escape(term) + r"(?![\w])", text) is not None
        if found == bool(negated):
            return False
    return True


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _filters(params: dict[str, list[str]]) -> dict[str, Any]:
    levels = [value.upper() for value in params.get("level", [])]
    bad = [value for value in levels if value not in LEVELS]
    if bad:
        raise ApiError(422, "validation_error", "Invalid level", [{"loc": ["query", "level"], "input": bad[0]}])
    try:
        start = parse_time(params["from"][0]) if params.get("from") else None
        end = parse_time(params["to"][0]) if params.get("to") else None
    except ValueError as error:
        raise ApiError(422, "validation_error", f"Invalid time: {error}", None) from error
    return {
        "levels": set(levels),
        "source": params.get("source", [None])[0],
        "q": params.get("q", [None])[0],
        "from": start,
        "to": end,
    }


def _select(events: list[dict[str, Any]], filters: dict[str, Any]) -> list[dict[str, Any]]:
    chosen = []
    for event in events:
        moment = parse_time(event["timestamp"])
        if filters["levels"] and event["level"] not in filters["levels"]:
            continue
        if filters["source"] and event["source"] != filters["source"]:
            continue
        if filters["from"] and moment < filters["from"]:
            continue
        if filters["to"] and moment >= filters["to"]:
            continue
        if filters["q"] and not _text_matches(event["message"], filters["q"]):
            continue
        chosen.append(event)
    return chosen


class MockApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    def search(self, params: dict[str, list[str]]) -> dict[str, Any]:
        events = _select(self.store.snapshot(), _filters(params))
        try:
            limit = int(params.get("limit", ["100"])[0])
        except ValueError as error:
            raise ApiError(422, "validation_error", "limit must be an integer", None) from error
        if not 1 <= limit <= 1000:
            raise ApiError(422, "validation_error", "limit must be between 1 and 1000", None)
        cursor = params.get("cursor", [None])[0]
        if cursor:
            last = next((e for e in self.store.snapshot() if cursor == f"after:{e['id']}"), None)
            if last is None:
                raise ApiError(400, "invalid_cursor", "The cursor cannot be used", None)
            key = (last["timestamp"], last["id"])
            events = [event for event in events if (event["timestamp"], event["id"]) < key]
        page = events[:limit]
        more = len(events) > limit
        return {"items": page, "nextCursor": f"after:{page[-1]['id']}" if more and page else None}

    def histogram(self, params: dict[str, list[str]]) -> dict[str, Any]:
        filters = _filters(params)
        end = filters["to"] or datetime.now(UTC)
        start = filters["from"] or end - timedelta(hours=24)
        buckets = int(params.get("buckets", ["60"])[0])
        if not 1 <= buckets <= 1000 or end <= start:
            raise ApiError(400, "invalid_range", "from must be before to; buckets 1-1000", None)
        seconds = max(1, -(-int((end - start).total_seconds()) // buckets))
        # Buckets are aligned on multiples of their width, as date_bin would place them.
        first = datetime.fromtimestamp(int(start.timestamp()) // seconds * seconds, UTC)
        answer = []
        moment = first
        while moment < end:
            answer.append({"start": iso(moment), "counts": {}})
            moment += timedelta(seconds=seconds)
        for event in _select(self.store.snapshot(), {**filters, "from": start, "to": end}):
            index = int((parse_time(event["timestamp"]) - first).total_seconds()) // seconds
            counts = answer[index]["counts"]
            counts[event["level"]] = counts.get(event["level"], 0) + 1
        return {"from": iso(start), "to": iso(end), "bucketSeconds": seconds, "buckets": answer}

    def _find(self, ident: str) -> tuple[list[dict[str, Any]], int]:
        events = self.store.snapshot()
        for index, event in enumerate(events):
            if event["id"] == ident:
                return events, index
        raise ApiError(404, "not_found", "No such event in the organization", None)

    def event(self, ident: str) -> dict[str, Any]:
        events, index = self._find(ident)
        return events[index]

    def context(self, ident: str, params: dict[str, list[str]]) -> dict[str, Any]:
        events, index = self._find(ident)
        event = events[index]
        before_n = int(params.get("before", ["10"])[0])
        after_n = int(params.get("after", ["10"])[0])
        same = [e for e in events if e["source"] == event["source"]]
        position = same.index(event)
        newer = same[max(0, position - after_n) : position]  # newest first
        older = same[position + 1 : position + 1 + before_n]
        return {"before": list(reversed(older)), "event": event, "after": list(reversed(newer))}

    def status(self, ident: str) -> dict[str, Any]:
        if ident == QUEUED_ID:
            return {"id": ident, "status": "queued"}
        if ident == DEAD_ID:
            return {"id": ident, "status": "dead_lettered", "reason": DEAD_REASON}
        self._find(ident)
        return {"id": ident, "status": "stored"}


class Handler(BaseHTTPRequestHandler):
    server: MockServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _error(self, error: ApiError) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        self._json(
            error.status,
            {"status": "error", "error": {"code": error.code, "message": error.message, "details": error.details}},
            headers,
        )

    def _static(self, path: str) -> None:
        if path == "/explore/":
            self._send(HTTPStatus.MOVED_PERMANENTLY, b"", "text/plain", {"Location": "/explore"})
            return
        name = "index.html" if path == "/explore" else path.removeprefix("/explore/")
        target = (EXPLORE_DIR / name).resolve()
        if not target.is_relative_to(EXPLORE_DIR.resolve()) or not target.is_file():
            self._error(ApiError(404, "not_found", "No such file", None))
            return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".js":
            content_type = "text/javascript"
        self._send(
            200,
            target.read_bytes(),
            f"{content_type}; charset=utf-8"
            if "text" in content_type or target.suffix in (".js", ".css", ".html", ".svg")
            else content_type,
            {
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                "base-uri 'none'; frame-ancestors 'none'"
            },
        )

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, params = url.path, parse_qs(url.query)
        self.server.store.requests.append(self.path)
        if path == "/explore" or path.startswith("/explore/"):
            self._static(path)
            return
        if not path.startswith("/api/"):
            self._error(ApiError(404, "not_found", "No such route", None))
            return
        if self.server.delay:
            threading.Event().wait(self.server.delay)
        authorization = self.headers.get("Authorization", "")
        key = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        try:
            if key not in (READ_KEY, INGEST_ONLY_KEY):
                raise ApiError(401, "unauthorized", "A valid API key is required", None)
            if key == INGEST_ONLY_KEY:
                raise ApiError(403, "forbidden", "The API key lacks the read scope", {"required": "read"})
            api = MockApi(self.server.store)
            if path == "/api/logs":
                self._json(200, api.search(params))
            elif path == "/api/logs/histogram":
                self._json(200, api.histogram(params))
            elif match := re.fullmatch(r"/api/logs/([^/]+)/context", path):
                self._json(200, api.context(match.group(1), params))
            elif match := re.fullmatch(r"/api/logs/([^/]+)/status", path):
                self._json(200, api.status(match.group(1)))
            elif match := re.fullmatch(r"/api/logs/([^/]+)", path):
                self._json(200, api.event(match.group(1)))
            else:
                raise ApiError(404, "not_found", "No such route", None)
        except ApiError as error:
            self._error(error)

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if urlsplit(self.path).path == "/__mock/events":
            self._json(201, self.server.store.add_event(**body))
        else:
            self._error(ApiError(405, "method_not_allowed", "Method not allowed", None))


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, store: Store | None = None, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.store = store or Store()
        self.delay = delay

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> MockServer:
        threading.Thread(target=self.serve_forever, name="explorer-mock", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--count", type=int, default=250)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every API answer")
    args = parser.parse_args()
    server = MockServer(args.port, Store(args.count), args.delay)
    print(f"{server.url}/explore  (key: {READ_KEY})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
