"""Micro-benchmark of the shipper decoders: CPU microseconds per event on realistic 1,000-record requests.

    python tests/unit/edge/decoders/bench_decoders.py [--repeat N]

Each request holds 1,000 records of 250-400 bytes on the wire with 5-10 attributes each, as shippers send them:
OTLP from one service (protobuf and JSON), Loki from 10 streams of 100 entries (a third carry structured metadata),
Elasticsearch `_bulk` with ECS-style documents. Printed: the best and the median of N runs, CPU time of this process
(time.process_time) divided by the events decoded, with the baseline of the same loop that only splits the body,
measured in the same run. Not a test: nothing is asserted.
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import cramjam
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "layers" / "logpipe"))

from logpipe.edge.decoders import esbulk, loki, otlp

EVENTS = 1000
LIMIT = 1 << 30
WORDS = ["request", "handled", "user", "order", "payment", "cache", "miss", "retry", "upstream", "timeout", "pool"]
LEVELS = ["info", "info", "info", "debug", "warn", "error"]


def sentence(rng: random.Random, low: int, high: int) -> str:
    text = ""
    target = rng.randint(low, high)
    while len(text) < target:
        text += rng.choice(WORDS) + " "
    return text[:target]


def otlp_request(rng: random.Random) -> ExportLogsServiceRequest:
    def kv(key, **value):
        return KeyValue(key=key, value=AnyValue(**value))

    records = []
    for n in range(EVENTS):
        records.append(
            LogRecord(
                time_unix_nano=1_700_000_000_000_000_000 + n * 1_000_000,
                observed_time_unix_nano=1_700_000_000_000_000_000 + n * 1_000_000 + 500,
                severity_number=rng.choice([5, 9, 9, 9, 13, 17]),
                severity_text=rng.choice(["DEBUG", "INFO", "INFO", "WARN", "ERROR"]),
                body=AnyValue(string_value=sentence(rng, 90, 180)),
                attributes=[
                    kv("http.request.method", string_value=rng.choice(["GET", "POST"])),
                    kv("url.path", string_value="/api/orders/" + str(rng.randint(1, 99999))),
                    kv("http.response.status_code", int_value=rng.choice([200, 201, 404, 500])),
                    kv("user.id", string_value=f"user-{rng.randint(1, 5000)}"),
                    kv("duration_ms", double_value=rng.random() * 100),
                    kv("retry", bool_value=rng.random() < 0.1),
                ],
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                flags=1,
            )
        )
    resource = Resource(
        attributes=[
            kv("service.name", string_value="checkout"),
            kv("service.version", string_value="1.4.2"),
            kv("host.name", string_value="ip-10-0-3-17"),
            kv("deployment.environment", string_value="prod"),
        ]
    )
    scope = InstrumentationScope(name="io.opentelemetry.logback", version="2.1.0")
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(scope=scope, log_records=records)])]
    )


def otlp_json(request: ExportLogsServiceRequest) -> bytes:
    """OTLP JSON: protobuf's JSON mapping with integer enums and the ids as hex, as the OTLP spec writes them."""
    document = MessageToDict(request, use_integers_for_enums=True)
    for resource in document["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                for field in ("traceId", "spanId"):
                    record[field] = __import__("base64").b64decode(record[field]).hex()
    return json.dumps(document).encode()


def loki_request(rng: random.Random) -> tuple[bytes, bytes]:
    request = loki.PushRequest()
    document = {"streams": []}
    for s in range(10):
        labels = {
            "job": f"app-{s}",
            "namespace": "shop",
            "pod": f"app-{s}-7d9f8c-x2k{s}",
            "level": LEVELS[s % len(LEVELS)],
            "cluster": "eu-west-1",
        }
        stream = request.streams.add(labels="{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}")
        values = []
        for n in range(EVENTS // 10):
            line = (
                f'ts=2024-05-01T12:00:{n % 60:02d}Z caller=handler.go:{rng.randint(10, 999)} msg="'
                + sentence(rng, 150, 250)
                + f'" duration={rng.random():.4f}s'
            )
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds = 1_700_000_000 + n
            entry.timestamp.nanos = rng.randint(0, 999_999_999)
            nanos = str((1_700_000_000 + n) * 10**9 + entry.timestamp.nanos)
            if n % 3 == 0:
                metadata = {"trace_id": rng.randbytes(16).hex(), "user": f"user-{rng.randint(1, 500)}"}
                for name, value in metadata.items():
                    entry.structuredMetadata.add(name=name, value=value)
                values.append([nanos, line, metadata])
            else:
                values.append([nanos, line])
        document["streams"].append({"stream": labels, "values": values})
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString())), json.dumps(document).encode()


def bulk_request(rng: random.Random) -> bytes:
    lines = []
    for n in range(EVENTS):
        lines.append(b'{"create":{}}')
        document = {
            "@timestamp": f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}.{rng.randint(0, 999):03d}Z",
            "message": sentence(rng, 100, 180),
            "log": {"level": rng.choice(LEVELS), "logger": "com.shop.orders.Handler"},
            "service": {"name": "orders"},
            "host": {"name": "ip-10-0-3-17"},
            "http": {"request": {"method": "GET"}, "response": {"status_code": rng.choice([200, 404, 500])}},
            "trace.id": rng.randbytes(16).hex(),
            "user.id": f"user-{rng.randint(1, 5000)}",
        }
        lines.append(json.dumps(document, separators=(",", ":")).encode())
    return b"\n".join(lines) + b"\n"


def cpu_per_event(function, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        result = function()
        runs.append((time.process_time() - start) / EVENTS * 1e6)
        del result
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    repeat = parser.parse_args().repeat
    rng = random.Random(14)
    otlp_pb = otlp_request(rng)
    otlp_body, otlp_json_body = otlp_pb.SerializeToString(), otlp_json(otlp_pb)
    loki_body, loki_json_body = loki_request(rng)
    bulk_body = bulk_request(rng)
    protobuf, json_type, ndjson = "application/x-protobuf", "application/json", "application/x-ndjson"
    cases = [  # name, body, bytes per event once decoded, decoder, its arguments after the body
        ("otlp protobuf", otlp_body, len(otlp_body), otlp.decode, (protobuf, EVENTS, LIMIT)),
        ("otlp json", otlp_json_body, len(otlp_json_body), otlp.decode, (json_type, EVENTS, LIMIT)),
        (
            "loki protobuf+snappy",
            loki_body,
            len(loki.unsnappy(loki_body, LIMIT)),
            loki.decode,
            (protobuf, EVENTS, LIMIT),
        ),
        ("loki json", loki_json_body, len(loki_json_body), loki.decode, (json_type, EVENTS, LIMIT)),
        ("elasticsearch _bulk", bulk_body, len(bulk_body), esbulk.decode, (ndjson, EVENTS, LIMIT, "logs")),
    ]
    baseline_min, baseline_median = cpu_per_event(lambda: bulk_body.split(b"\n"), repeat)
    print(f"{EVENTS} events per request, best and median of {repeat} runs, CPU µs per event (time.process_time)")
    print(f"{'baseline: split a _bulk body into lines':56s} {baseline_min:6.2f} {baseline_median:6.2f}")
    for name, body, decoded_size, decoder, arguments in cases:

        def run(decoder=decoder, body=body, arguments=arguments):
            return decoder(body, *arguments)

        result = run()
        items = result.items if isinstance(result, esbulk.BulkRequest) else result
        assert len(items) == EVENTS and all(isinstance(item, dict) for item in items), name
        best, median = cpu_per_event(run, repeat)
        label = f"{name} ({len(body) // 1024} KiB sent, {decoded_size // EVENTS} B/event decoded)"
        print(f"{label:56s} {best:6.2f} {median:6.2f}")


if __name__ == "__main__":
    main()
