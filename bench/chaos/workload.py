"""Constant load through the HTTP API, as real clients send it: single events (with an Idempotency-Key, with a client
`id`, with neither), native batches (with and without a key, some with an invalid item), OTLP/HTTP JSON, Loki push
JSON and Elasticsearch `_bulk`, plus invalid events that must be refused. A request answered 5xx, 409, 429 or not
answered is sent again (the same body and key) after its Retry-After or a backoff, until its retry budget runs out.

Every event carries a client-known id or gets its id from the answer, so the ledger knows, per request, which ids
were acknowledged and which refused; OTLP and Loki answers name no ids, so theirs are derived by the intake's own
derivation (logpipe.ingest.intake._DerivedIds over the body's SHA-256, per item index).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger import Attempt, Ledger, Settled

from logpipe.ingest.intake import _DerivedIds

RETRY_BUDGET_S = 120  # a client keeps retrying one request this long
CLIENT_TIMEOUT_S = 10  # no answer within this: retried
MAX_BACKOFF_S = 10
KEEP_ALIVE_S = 4  # below the server's keep-alive timeout
# Client threads: enough that a 20 s outage answered with Retry-After 3-10 s still leaves clients free to send the
# next requests on time (40 requests/s x 3 s in retry = 120 busy).
CLIENTS = 200
BATCH_EVENTS = 5

Settle = Callable[[int, bytes], tuple[list[str], list[str]]]  # (status, body) -> (acknowledged ids, refused ids)


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    settle: Settle


def _event(organization_id: str, **extra: object) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {
        "organizationId": organization_id,
        "level": "INFO",
        "message": f"chaos {uuid.uuid4()}",
        "source": "chaos",
        "timestamp": now,
        **extra,
    }


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _answer_id(status: int, body: bytes) -> tuple[list[str], list[str]]:
    return ([json.loads(body)["id"]], []) if 200 <= status < 300 else ([], [])


def _batch_items(status: int, body: bytes) -> tuple[list[str], list[str]]:
    if not 200 <= status < 300:
        return [], []
    return [item["id"] for item in json.loads(body)["items"] if item["status"] == "accepted"], []


class Requests:
    """The request mix, each kind with the way its acknowledged and refused ids are known."""

    def __init__(self, organization_id: str, headers: dict[str, str]) -> None:
        self.org = organization_id
        self.headers = {**headers, "Content-Type": "application/json"}

    def single_keyed(self) -> Request:
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        return Request("single_keyed", "/api/logs", _json(_event(self.org)), headers, _answer_id)

    def single_client_id(self) -> Request:
        event_id = str(uuid.uuid4())
        return Request(
            "single_client_id",
            "/api/logs",
            _json(_event(self.org, id=event_id)),
            self.headers,
            lambda status, _body: ([event_id], []) if 200 <= status < 300 else ([], []),
        )

    def single_plain(self) -> Request:
        return Request("single_plain", "/api/logs", _json(_event(self.org)), self.headers, _answer_id)

    def batch_keyed(self) -> Request:
        """A native batch under a key, one item in two invalid (refused; its client id must never be stored)."""
        events = [_event(self.org) for _ in range(BATCH_EVENTS)]
        invalid_id = str(uuid.uuid4())
        events.append(_event(self.org, id=invalid_id, level="LOUD"))
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}

        def settle(status: int, body: bytes) -> tuple[list[str], list[str]]:
            accepted, _ = _batch_items(status, body)
            return accepted, [invalid_id] if 200 <= status < 500 else []

        return Request("batch_keyed", "/api/logs/batch", _json(events), headers, settle)

    def batch_plain(self) -> Request:
        body = _json({"events": [_event(self.org) for _ in range(BATCH_EVENTS)]})
        return Request("batch_plain", "/api/logs/batch", body, self.headers, _batch_items)

    def otlp_json(self) -> Request:
        now_ns = time.time_ns()
        records = [
            {"timeUnixNano": str(now_ns + n), "severityNumber": 9, "body": {"stringValue": f"chaos {uuid.uuid4()}"}}
            for n in range(BATCH_EVENTS)
        ]
        resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "chaos"}}]}
        body = _json({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]})
        return Request("otlp_json", "/v1/logs", body, self.headers, self._derived(body))

    def loki_json(self) -> Request:
        now_ns = time.time_ns()
        values = [[str(now_ns + n), f"chaos {uuid.uuid4()}"] for n in range(BATCH_EVENTS)]
        body = _json({"streams": [{"stream": {"service_name": "chaos", "level": "info"}, "values": values}]})
        return Request("loki_json", "/loki/api/v1/push", body, self.headers, self._derived(body))

    def elasticsearch_bulk(self) -> Request:
        lines = []
        for _ in range(BATCH_EVENTS):
            lines += [{"create": {"_id": str(uuid.uuid4())}}, {"message": f"chaos {uuid.uuid4()}", "level": "info"}]
        body = b"".join(_json(line) + b"\n" for line in lines)
        headers = {**self.headers, "Content-Type": "application/x-ndjson"}

        def settle(status: int, answer: bytes) -> tuple[list[str], list[str]]:
            if not 200 <= status < 300:
                return [], []
            results = [next(iter(item.values())) for item in json.loads(answer)["items"]]
            return [r["_id"] for r in results if r["status"] == 201], [r["_id"] for r in results if r["status"] != 201]

        return Request("elasticsearch_bulk", "/logs/_bulk", body, headers, settle)

    def invalid_event(self) -> Request:
        """An event no retry makes valid: answered 4xx, its id never stored."""
        event_id = str(uuid.uuid4())
        return Request(
            "invalid_event",
            "/api/logs",
            _json(_event(self.org, id=event_id, level="LOUD")),
            self.headers,
            lambda status, _body: ([], [event_id]) if 400 <= status < 500 else ([], []),
        )

    def _derived(self, body: bytes) -> Settle:
        """The ids the intake derives for a shipper's request without a key: organization, body digest, index."""
        derive = _DerivedIds(f"sha256:{hashlib.sha256(body).hexdigest()}")  # the intake's own derivation
        ids = [derive(self.org, index) for index in range(BATCH_EVENTS)]
        return lambda status, _body: (ids, []) if 200 <= status < 300 else ([], [])


# Relative weights of the request kinds in the mix.
MIX = {
    "single_keyed": 4,
    "single_client_id": 3,
    "single_plain": 3,
    "batch_keyed": 1,
    "batch_plain": 1,
    "otlp_json": 1,
    "loki_json": 1,
    "elasticsearch_bulk": 1,
    "invalid_event": 1,
}


def retryable(status: int) -> bool:
    """What a real client sends again: no answer, 5xx, and the 4xx that say "later" (in progress, throttled)."""
    return status == 0 or status >= 500 or status in (409, 429)


class Connection:
    """A client's keep-alive connection; one idle longer than the server keeps it (uvicorn: 5 s) is opened anew
    before use, as HTTP client libraries do, so a stale connection is not mistaken for an unanswered request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.http = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT_S)
        self.used = time.monotonic()

    def post(self, request: Request) -> tuple[int, str | None, bytes]:
        """(status, Retry-After, body); status 0 when no answer came."""
        if time.monotonic() - self.used > KEEP_ALIVE_S:
            self.close()
        self.used = time.monotonic()
        try:
            self.http.request("POST", request.path, request.body, request.headers)
            response = self.http.getresponse()
            return response.status, response.getheader("Retry-After"), response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return 0, None, b""

    def close(self) -> None:
        self.http.close()
        self.http = http.client.HTTPConnection(self.host, self.port, timeout=CLIENT_TIMEOUT_S)


class Workload:
    """``rate`` requests per second from a pool of client threads, each request retried until it settles."""

    def __init__(
        self, url: str, requests: Requests, ledger: Ledger, rate: float, seed: int, clients: int = CLIENTS
    ) -> None:
        self.host, _, port = url.removeprefix("http://").partition(":")
        self.port = int(port)
        self.requests = requests
        self.ledger = ledger
        self.rate = rate
        self.random = random.Random(seed)
        self.backlog: queue.Queue[str | None] = queue.Queue(maxsize=clients)
        self.not_sent = 0  # ticks dropped because every client was busy retrying
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.ticker = threading.Thread(target=self._tick, daemon=True)

    def start(self) -> None:
        for thread in [*self.threads, self.ticker]:
            thread.start()

    def stop(self) -> None:
        """Stop offering new requests and wait until every request in flight settled or gave up."""
        self.stopping.set()
        self.ticker.join()
        for _ in self.threads:
            self.backlog.put(None)
        for thread in self.threads:
            thread.join()

    def _tick(self) -> None:
        kinds, weights = list(MIX), list(MIX.values())
        interval, due = 1 / self.rate, time.monotonic()
        while not self.stopping.is_set():
            try:
                self.backlog.put_nowait(self.random.choices(kinds, weights)[0])
            except queue.Full:
                self.not_sent += 1
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))

    def _client(self) -> None:
        connection = Connection(self.host, self.port)
        while (kind := self.backlog.get()) is not None:
            self._send_until_settled(connection, getattr(self.requests, kind)())
        connection.close()

    def _send_until_settled(self, connection: Connection, request: Request) -> None:
        deadline, first_sent = time.monotonic() + RETRY_BUDGET_S, time.time()
        for attempt in range(1_000_000):
            started, clock = time.time(), time.perf_counter()
            status, retry_after, body = connection.post(request)
            self.ledger.attempt(
                Attempt(request.kind, started, time.perf_counter() - clock, status, retry_after is not None)
            )
            if not retryable(status):
                self.ledger.settle(Settled(request.kind, first_sent), *request.settle(status, body))
                return
            if time.monotonic() > deadline:
                self.ledger.give_up()
                return
            time.sleep(self._backoff(attempt, retry_after))

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Retry-After (a minimum) plus up to a second of jitter, else exponential backoff with jitter: clients
        that all wait the same Retry-After would come back in the same instant."""
        if retry_after and retry_after.isdigit():
            return min(MAX_BACKOFF_S, int(retry_after)) + self.random.random()
        return min(4.0, 0.25 * 2**attempt) * (0.5 + self.random.random())
