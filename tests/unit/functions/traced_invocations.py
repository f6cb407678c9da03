"""Run by test_tracing.py in a process of its own, with tracing on as on AWS (LAMBDA_TASK_ROOT set, no
POWERTOOLS_TRACE_DISABLED): the tracer decides at import, so the handlers must be imported under these settings.

Checks that every class of the layer is still a class (a capture_method left above a class turns it into a
function), then invokes the producer (one event and a batch, Kafka stubbed) and the consumer (PostgreSQL and
the dead-letter topic stubbed) with an X-Ray emitter that keeps what it is sent, and prints the subsegment names
recorded per invocation as JSON."""

import ast
import importlib
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

from aws_xray_sdk.core import xray_recorder

import logpipe
from logpipe.access import auth, ratelimit
from logpipe.adapters import kafka
from logpipe.observability import tracer
from logpipe.receipts import accepted, outcomes
from logpipe.sink import consume

REPO = Path(__file__).resolve().parents[3]


class KeptEntities:
    def __init__(self) -> None:
        self.names: list[str] = []

    def send_entity(self, entity) -> None:
        self.names += _names(entity.to_dict())

    def set_daemon_address(self, address) -> None:
        """No daemon: nothing is sent anywhere."""

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


def _names(entity: dict) -> list[str]:
    return [entity.get("name", ""), *(name for child in entity.get("subsegments", []) for name in _names(child))]


def classes_turned_into_functions() -> list[str]:
    broken = []
    for info in pkgutil.walk_packages(logpipe.__path__, "logpipe."):
        module = importlib.import_module(info.name)
        tree = ast.parse(Path(module.__file__).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not isinstance(getattr(module, node.name), type):
                broken.append(f"{info.name}.{node.name}")
    return broken


def load(function: str):
    spec = importlib.util.spec_from_file_location(f"traced_{function}", REPO / "functions" / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "traced"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:traced"
    log_group_name = "/aws/lambda/traced"
    log_stream_name = "traced"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> int:
    assert not tracer.disabled, "tracing should be on in this process"
    kept = KeptEntities()
    xray_recorder.configure(emitter=kept, streaming_threshold=0)
    kafka.publish_events = lambda events, **_: None
    accepted.record_accepted = lambda events, settings: None
    accepted.forget_settled = lambda events, settings: None
    outcomes.record_dead_letters = lambda letters: None
    consume.storage.store_events = lambda events: len(list(events))
    consume.deadletter.publish = lambda letters: None
    auth._lookup = lambda key_hash, settings: auth.Principal("traced", "acme", frozenset({"ingest"}))
    ratelimit.take_organization_tokens = lambda organization_id, cost, settings, bucket=None: None

    producer, consumer = load("producer"), load("consumer")
    events = {name: json.loads((REPO / "events" / f"{name}.json").read_text()) for name in sys.argv[1:]}
    recorded: dict[str, object] = {"broken_classes": classes_turned_into_functions()}
    for name, event in events.items():
        kept.names.clear()
        function = consumer if name.startswith("consumer") else producer
        if function is producer:
            event["headers"]["authorization"] = "Bearer lp_" + "t" * 43  # the shape of a key
        result = function.handler(event, Context())
        recorded[name] = {"names": sorted(set(kept.names)), "result": result}
    print(json.dumps(recorded, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
