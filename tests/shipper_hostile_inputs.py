"""Bad requests to the shipper routes and the exact status each must get, with nothing published.

Used by tests/integration/test_shipper_hostile_inputs.py against the real Kafka (the topic's watermarks must not
move). A request refused whole answers its status; an Elasticsearch `_bulk` whose every document is refused
answers 200 with each item's 400, as Elasticsearch does (`item_status`).
"""

import gzip
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cramjam
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from logpipe.edge.decoders.loki import _push_request_class

OTLP = "/v1/logs"
LOKI = "/loki/api/v1/push"
BULK = "/_bulk"
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass(frozen=True)
class ShipperHostile:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    item_status: int | None = None  # _bulk: every item's status in a 200 answer
    extra: dict[str, str] = field(default_factory=dict)


def otlp_request(*records: dict) -> bytes:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for record in records:
        added = scope_logs.log_records.add()
        added.body.string_value = record.get("body", "m")
        added.severity_number = record.get("severity", 9)
        added.time_unix_nano = record.get("time", time.time_ns())
    return request.SerializeToString()


def loki_request(streams: list[tuple[str, list[tuple[datetime, str]]]]) -> bytes:
    push = _push_request_class()()
    for labels, entries in streams:
        stream = push.streams.add()
        stream.labels = labels
        for moment, line in entries:
            entry = stream.entries.add()
            entry.timestamp.FromDatetime(moment)
            entry.line = line
    return bytes(cramjam.snappy.compress_raw(push.SerializeToString()))


def loki_json(nanos: str, line: str = "line", labels: dict | None = None) -> bytes:
    return json.dumps({"streams": [{"stream": labels or {"job": "x"}, "values": [[nanos, line]]}]}).encode()


def snappy_bomb() -> bytes:
    """A snappy block announcing 64 MiB (its preamble), with a body that would inflate to that."""
    return bytes(cramjam.snappy.compress_raw(b"\0" * (64 * 1024 * 1024)))


NOW = datetime.now(UTC)
YEAR_3000_NANOS = str(int(datetime(3000, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000)
GZIP_BOMB = gzip.compress(b" " * 32 * 1024 * 1024, compresslevel=9)
GZIP = {"content-encoding": "gzip"}
MANY_STREAMS = [(f'{{n="{n}"}}', [(NOW, "l")]) for n in range(100_000)]

SHIPPER_HOSTILE: list[ShipperHostile] = [
    # OTLP/HTTP
    ShipperHostile("OTLP truncated protobuf", OTLP, otlp_request({})[:-3], PROTOBUF, 400),
    ShipperHostile("OTLP not JSON", OTLP, b'{"resourceLogs": [', JSON, 400),
    ShipperHostile("OTLP wrong content type", OTLP, otlp_request({}), {"content-type": "text/plain"}, 415),
    ShipperHostile("OTLP gzip bomb", OTLP, GZIP_BOMB, {**PROTOBUF, **GZIP}, 413),
    ShipperHostile("OTLP unknown severity only", OTLP, otlp_request({"severity": 99}), PROTOBUF, 400),
    ShipperHostile("OTLP year 3000 only", OTLP, otlp_request({"time": 2**64 - 1}), PROTOBUF, 400),
    ShipperHostile("OTLP empty bodies only", OTLP, otlp_request({"body": ""}), PROTOBUF, 400),
    ShipperHostile("OTLP 10,001 records", OTLP, otlp_request(*[{}] * 10_001), PROTOBUF, 413),
    # Loki push
    ShipperHostile("Loki truncated snappy", LOKI, loki_request([('{job="x"}', [(NOW, "l")])])[:-4], PROTOBUF, 400),
    ShipperHostile("Loki snappy bomb", LOKI, snappy_bomb(), PROTOBUF, 413),
    ShipperHostile("Loki invalid UTF-8 label", LOKI, loki_json("1").replace(b'"x"', b'"\\udcff"'), JSON, 400),
    ShipperHostile("Loki bad label syntax", LOKI, loki_request([("{job=x}", [(NOW, "l")])]), PROTOBUF, 400),
    ShipperHostile("Loki 100,000 streams", LOKI, loki_request(MANY_STREAMS), PROTOBUF, 413),
    ShipperHostile("Loki timestamp 0", LOKI, loki_json("0"), JSON, 400),
    ShipperHostile("Loki year 3000", LOKI, loki_json(YEAR_3000_NANOS), JSON, 400),
    ShipperHostile("Loki wrong content type", LOKI, loki_json("1"), {"content-type": "text/csv"}, 415),
    # Elasticsearch _bulk
    ShipperHostile("_bulk malformed action", BULK, b'{"create": \n{"message": "m"}\n', NDJSON, 400),
    ShipperHostile("_bulk missing document", BULK, b'{"create": {"_index": "x"}}\n', NDJSON, 400),
    ShipperHostile("_bulk gzip bomb", BULK, GZIP_BOMB, {**NDJSON, **GZIP}, 413),
    ShipperHostile(
        "_bulk update and delete only",
        BULK,
        b'{"update":{"_index":"x","_id":"1"}}\n{"doc":{}}\n{"delete":{"_index":"x","_id":"1"}}\n',
        NDJSON,
        200,
        item_status=400,
    ),
    ShipperHostile(
        "_bulk year 3000 only",
        BULK,
        b'{"create":{"_index":"x"}}\n{"@timestamp":"3000-01-01T00:00:00Z","message":"m"}\n',
        NDJSON,
        200,
        item_status=400,
    ),
]  # fmt: skip
