"""Bad requests to the producer and the exact answer each must get: always a 4xx, never a 5xx, nothing published;
and bad parameters of the read routes (HOSTILE_READS): a 4xx naming the parameter, before any query.

Shared by tests/unit/functions/test_hostile_inputs.py (the handlers, Kafka and PostgreSQL faked) and
tests/integration/test_hostile_inputs.py (the handlers against the real Kafka, PostgreSQL and Redis).
Limits are the settings' defaults (docs/ingest.md, "Limits").
"""

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field

ORG = "acme"  # the organization of the key every sample /api request carries (tests/conftest.py)
SEED = {"organizationId": ORG, "level": "INFO", "message": "User logged in", "source": "auth-service"}
BATCH = "/api/logs/batch"
GZIP = {"content-encoding": "gzip"}
NDJSON = {"content-type": "application/x-ndjson"}
CSV = {"content-type": "text/csv"}
BAD_ENCODING = "unsupported_content_encoding"
TOO_LARGE = "payload_too_large"
HUGE = "9" * 5000  # more digits than Python converts to an integer (4300)


@dataclass(frozen=True)
class Hostile:
    name: str
    body: object  # text, raw bytes (sent base64) or a JSON value
    status: int
    code: str
    path: str = "/api/logs"
    headers: dict[str, str] = field(default_factory=dict)


def event(**overrides: object) -> dict:
    return {**SEED, **overrides}


def raw_event(**overrides: str) -> str:
    """The seed as JSON text with fields replaced by raw JSON fragments (escapes json.dumps would not write)."""
    fields = {key: json.dumps(value) for key, value in SEED.items()} | overrides
    return "{" + ",".join(f'"{key}":{value}' for key, value in fields.items()) + "}"


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def deflate(data: bytes) -> bytes:
    return zlib.compress(data)  # zlib framing, not gzip


SEED_TEXT = json.dumps(SEED)
GZIP_BOMB = gzip.compress(b" " * 16 * 1024 * 1024, compresslevel=9)  # 16 MiB of spaces in ~16 KB

HOSTILE: list[Hostile] = [
    # Bytes that are not what they claim to be
    Hostile("invalid UTF-8 bytes", b'{"organizationId":"acme","message":"\xff\xfe"}', 400, "invalid_utf8"),
    Hostile("CESU-encoded surrogate bytes", SEED_TEXT.encode().replace(b"User", b"\xed\xa0\x80"), 400, "invalid_utf8"),
    Hostile("gzip header over plain JSON", json.dumps(SEED).encode(), 400, "malformed_gzip", headers=GZIP),
    Hostile("gzip header over a plain text body", json.dumps(SEED), 400, "malformed_gzip", headers=GZIP),
    Hostile("gzip header over a zlib stream", deflate(json.dumps(SEED).encode()), 400, "malformed_gzip", headers=GZIP),
    Hostile("truncated gzip", gzip.compress(json.dumps(SEED).encode())[:-12], 400, "malformed_gzip", headers=GZIP),
    Hostile("gzip header over an empty body", b"", 400, "malformed_gzip", headers=GZIP),
    Hostile("gzip bomb", GZIP_BOMB, 413, "payload_too_large", headers=GZIP),
    Hostile("gzip bomb to the batch route", GZIP_BOMB * 4, 413, "payload_too_large", BATCH, GZIP),
    Hostile("invalid UTF-8 inside gzip", gzip.compress(b'{"message":"\xc3\x28"}'), 400, "invalid_utf8", headers=GZIP),
    Hostile("brotli", json.dumps(SEED), 415, "unsupported_content_encoding", headers={"content-encoding": "br"}),
    Hostile("deflate", json.dumps(SEED), 415, "unsupported_content_encoding", headers={"content-encoding": "deflate"}),
    Hostile("two codings", json.dumps(SEED), 415, BAD_ENCODING, headers={"content-encoding": "gzip, gzip"}),
    Hostile("text/plain", json.dumps(SEED), 415, "unsupported_media_type", headers={"content-type": "text/plain"}),
    Hostile("batch as text/csv", json.dumps([SEED]), 415, "unsupported_media_type", BATCH, CSV),
    # Not JSON, or JSON no parser should follow
    Hostile("malformed JSON", '{"organizationId": ', 400, "malformed_json"),
    Hostile("empty body", "", 422, "validation_failed"),
    Hostile("NaN literal", raw_event(message="NaN"), 400, "malformed_json"),
    Hostile("Infinity in attributes", raw_event(attributes='{"x": -Infinity}'), 400, "malformed_json"),
    Hostile("attributes nested 100,000 deep", raw_event(attributes=nested(100_000)), 400, "nesting_too_deep"),
    Hostile("batch nested 100,000 deep", "[" * 100_000 + "]" * 100_000, 400, "nesting_too_deep", BATCH),
    Hostile("body over max_body_bytes", " " * (1_048_576 + 1), 413, "payload_too_large"),
    # Schema
    Hostile("array instead of an object", [SEED], 422, "validation_failed"),
    Hostile("a bare string", "just text", 400, "malformed_json"),
    Hostile("JSON null", "null", 422, "validation_failed"),
    Hostile("unknown level", event(level="LOUD"), 422, "validation_failed"),
    Hostile("empty message", event(message=""), 422, "validation_failed"),
    Hostile("message is a number", event(message=42), 422, "validation_failed"),
    Hostile("unknown field", event(severity="high"), 422, "validation_failed"),
    Hostile("attributes is a list", event(attributes=[1, 2]), 422, "validation_failed"),
    Hostile("id is not a uuid", event(id="not-a-uuid"), 422, "validation_failed"),
    Hostile("timestamp without timezone", event(timestamp="2026-11-27T10:00:00"), 422, "validation_failed"),
    Hostile("organizationId with spaces", event(organizationId="acme corp"), 422, "validation_failed"),
    Hostile("organizationId of 129 chars", event(organizationId="a" * 129), 422, "validation_failed"),
    Hostile("another organization than the key's", event(organizationId="other-org"), 403, "organization_mismatch"),
    # Rules PostgreSQL and Kafka would break on
    Hostile("integer attribute of 400 digits", raw_event(attributes='{"n": ' + "9" * 400 + "}"), 422, "invalid_event"),
    Hostile("integer attribute of 2**63", event(attributes={"n": 2**63}), 422, "invalid_event"),
    Hostile("integer attribute of 5,000 digits", raw_event(attributes=f'{{"n": {HUGE}}}'), 422, "invalid_event"),
    Hostile("batch, an integer of 5,000 digits", f"[{raw_event(attributes=f'[{HUGE}]')}]", 422, "invalid_event", BATCH),
    Hostile("NDJSON, an integer of 5,000 digits", raw_event(traceId=HUGE), 422, "batch_rejected", BATCH, NDJSON),
    Hostile("float overflowing to infinity", raw_event(attributes='{"x": 1e400}'), 422, "invalid_event"),
    Hostile("lone surrogate in an attribute", raw_event(attributes='{"k": "\\ud800"}'), 422, "invalid_event"),
    Hostile("lone surrogate in an attribute key", raw_event(attributes='{"\\udfff": 1}'), 422, "invalid_event"),
    Hostile("lone surrogate in the message", raw_event(message='"hi \\ud800"'), 422, "validation_failed"),
    Hostile("lone surrogate in the source", raw_event(source='"\\udc00"'), 422, "validation_failed"),
    Hostile("lone surrogate in traceId", raw_event(traceId='"\\ud800"'), 422, "validation_failed"),
    Hostile("NUL in the message", event(message="a\x00b"), 422, "invalid_event"),
    Hostile("NUL in an attribute key", event(attributes={"k\x00": 1}), 422, "invalid_event"),
    Hostile("NUL deep in an attribute", event(attributes={"a": [{"b": "\x00"}]}), 422, "invalid_event"),
    Hostile("NUL in traceId", event(traceId="t\x00"), 422, "invalid_event"),
    Hostile("attributes 9 levels deep", raw_event(attributes=nested(9)), 422, "invalid_event"),
    Hostile("lists 9 levels deep", event(attributes={"a": [[[[[[[[1]]]]]]]]}), 422, "invalid_event"),
    Hostile("65 attributes", event(attributes={f"k{i}": i for i in range(65)}), 422, "invalid_event"),
    Hostile("timestamp in 2999", event(timestamp="2999-01-01T00:00:00Z"), 422, "invalid_event"),
    Hostile("1 MB attribute value", event(attributes={"blob": "x" * 1_000_000}), 413, "payload_too_large"),
    Hostile("attribute key of 300 bytes", event(attributes={"k" * 300: 1}), 413, "payload_too_large"),
    Hostile("attributes over 64 KiB", event(attributes={f"k{i}": "v" * 9000 for i in range(8)}), 413, TOO_LARGE),
    Hostile("message of 40 KB", event(message="m" * 40_000), 413, "payload_too_large"),
    Hostile("200,000 empty lists in attributes", event(attributes={"a": [[]] * 200_000}), 413, "payload_too_large"),
    Hostile("200,000 empty objects in attributes", event(attributes={"a": [{}] * 200_000}), 413, "payload_too_large"),
    # Batches
    Hostile("batch that is an object", {"event": [SEED]}, 400, "invalid_batch", BATCH),
    Hostile("batch of a string", '"x"', 400, "invalid_batch", BATCH),
    Hostile("empty batch", [], 422, "invalid_event", BATCH),
    Hostile("empty NDJSON", "\r\n\r\n", 422, "invalid_event", BATCH, NDJSON),
    Hostile("10,001 events", [SEED] * 10_001, 413, "payload_too_large", BATCH),
    Hostile("batch of invalid items only", [event(level="LOUD"), 7, event(message="\0")], 422, "batch_rejected", BATCH),
    Hostile("NDJSON of broken lines only", '{"a":\r\nnot json\r\n', 422, "batch_rejected", BATCH, NDJSON),
]  # fmt: skip


@dataclass(frozen=True)
class HostileRead:
    name: str
    path: str
    query: dict[str, str]
    status: int
    code: str
    field: str  # the parameter the error's details name


def fields_named(error: dict) -> list[str]:
    """The fields an error's details name: {"field": ...} or, for schema violations, a list of problems."""
    details = error.get("details")
    if isinstance(details, list):
        return [problem["field"] for problem in details]
    return [details["field"]] if isinstance(details, dict) and "field" in details else []


def cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


LOGS, STATS, HISTOGRAM, KEYS = "/api/logs", "/api/stats", "/api/logs/histogram", "/api/keys"
SOME_ID = "0b3f2a9e-6d3c-4f7e-9a51-6f0d2b7c9e14"
SOME_TIME, YEAR_1, END_OF_9999 = "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"
NAIVE_AFTER_ZONED = {"from": "2026-01-02T00:00:00", "to": SOME_TIME}  # `from` read as UTC: later than `to`
SCHEMA = "validation_failed"


def bad_cursor(name: str, document: object, path: str = LOGS) -> HostileRead:
    return HostileRead(name, path, {"cursor": cursor(document)}, 400, "invalid_query", "cursor")


def bad_window(name: str, path: str, query: dict[str, str], field: str) -> HostileRead:
    return HostileRead(name, path, query, 400, "invalid_query", field)


HOSTILE_READS: list[HostileRead] = [
    # Cursors the API never returned
    bad_cursor("cursor whose id is a number", [SOME_TIME, 42]),
    bad_cursor("cursor whose id is a list", [SOME_TIME, [SOME_ID]]),
    bad_cursor("cursor whose time is a number", [7, SOME_ID]),
    bad_cursor("cursor whose time is not a time", ["yesterday", SOME_ID]),
    bad_cursor("cursor of an object", {"a": 1}),
    HostileRead("cursor that is not base64 JSON", LOGS, {"cursor": "not-a-cursor"}, 400, "invalid_query", "cursor"),
    HostileRead("cursor of 513 characters", LOGS, {"cursor": "a" * 513}, 422, SCHEMA, "query.cursor"),
    bad_cursor("keys: cursor whose id is a number", [SOME_TIME, 42], KEYS),
    bad_cursor("keys: cursor whose id is not a uuid", [SOME_TIME, "key-1"], KEYS),
    HostileRead(
        "keys: cursor that is not base64 JSON", KEYS, {"cursor": "not-a-cursor"}, 400, "invalid_query", "cursor"
    ),
    HostileRead("keys: cursor of 513 characters", KEYS, {"cursor": "a" * 513}, 422, SCHEMA, "query.cursor"),
    # Time windows
    bad_window("search: from without an offset after a to with one", LOGS, NAIVE_AFTER_ZONED, "from"),
    bad_window("stats: from without an offset after a to with one", STATS, NAIVE_AFTER_ZONED, "from"),
    bad_window("histogram: from without an offset after a to with one", HISTOGRAM, NAIVE_AFTER_ZONED, "from"),
    bad_window("stats: to in year 1", STATS, {"to": YEAR_1}, "to"),
    bad_window("histogram: to in year 1", HISTOGRAM, {"to": YEAR_1}, "to"),
    bad_window("stats: from in year 1", STATS, {"from": YEAR_1}, "from"),
    bad_window("stats: to at the end of 9999", STATS, {"to": END_OF_9999}, "to"),
    bad_window("histogram: from at the end of 9999", HISTOGRAM, {"from": END_OF_9999}, "from"),
    bad_window("stats: from in a later year, without to", STATS, {"from": "2999-01-01T00:00:00Z"}, "from"),
    HostileRead("search: from that is not a time", LOGS, {"from": "yesterday"}, 422, SCHEMA, "query.from"),
    # Sizes and shapes
    HostileRead("limit of 0", LOGS, {"limit": "0"}, 422, SCHEMA, "query.limit"),
    HostileRead("limit of 1001", LOGS, {"limit": "1001"}, 422, SCHEMA, "query.limit"),
    HostileRead("keys: limit of 0", KEYS, {"limit": "0"}, 422, SCHEMA, "query.limit"),
    HostileRead("keys: limit of 1001", KEYS, {"limit": "1001"}, 422, SCHEMA, "query.limit"),
    HostileRead("keys: limit that is not a number", KEYS, {"limit": "ten"}, 422, SCHEMA, "query.limit"),
    HostileRead("501 buckets", HISTOGRAM, {"buckets": "501"}, 422, SCHEMA, "query.buckets"),
    HostileRead(
        "101 events of context", f"/api/logs/{SOME_ID}/context", {"before": "101"}, 422, SCHEMA, "query.before"
    ),
    HostileRead("event id that is not a uuid", "/api/logs/not-a-uuid", {}, 422, SCHEMA, "path.event_id"),
    HostileRead("unknown level", LOGS, {"level": "LOUD"}, 422, SCHEMA, "query.level.0"),
]
