"""Ingest API: validated log events from HTTP to Kafka, answered only once the broker acknowledged.

Four intakes share one batch path: the native batch, OTLP/HTTP logs, Loki push and Elasticsearch `_bulk`. Each
route decodes its protocol into the common items (logpipe.edge.decoders), takes their number from the
organization's rate limit, and hands them to logpipe.ingest; only the answer's shape is the protocol's own.
"""

import gc
import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.access.models import Scope
from logpipe.adapters import cache, kafka, postgres
from logpipe.config import get_settings
from logpipe.edge.answers import json_response
from logpipe.edge.body import BodyLimits, body_bytes
from logpipe.edge.decoders import esbulk, loki, native, otlp
from logpipe.edge.middleware import authorized
from logpipe.edge.openapi import (
    BATCH_PATH,
    BULK_PATH,
    ES_INFO,
    ES_PROBE,
    ES_PROBE_PATHS,
    ES_SETUP_PATHS,
    INDEX_BULK_PATH,
    LOGS_PATH,
    LOKI_PUSH_PATH,
    OTLP_LOGS_PATH,
    POST_BATCH,
    POST_BULK,
    POST_LOG,
    POST_LOKI_PUSH,
    POST_OTLP_LOGS,
    IdempotencyKey,
    resolver_path,
)
from logpipe.edge.replies import elasticsearch_replies, loki_replies, otlp_replies
from logpipe.edge.resolver import create_resolver
from logpipe.ingest import idempotency, publisher
from logpipe.ingest.intake import accept_batch, client_event_id, ingest_batch, ingest_event
from logpipe.models import BatchAccepted, DecodedBatch, LogEventIn
from logpipe.observability import INGEST_COUNTERS, logger, metrics, publish_at_zero

settings = get_settings()
publish_at_zero(INGEST_COUNTERS)
# At cold start, not in the first request: on a fresh instance these cost about 30 ms of CPU, and a runner or a
# deployment starting eight instances at once had every one busy with its first request (throttled invocations).
kafka.connect()
cache.warm()
postgres.warm()
publisher.report_kafka_circuit(settings)  # after cache.warm(): reads the shared state
_batch_limits = BodyLimits(settings.max_batch_body_bytes, settings.max_batch_decoded_bytes)
_shipper_limits = BodyLimits(settings.max_batch_body_bytes, settings.max_batch_decoded_bytes, binary=True)
app = create_resolver(
    settings.max_body_bytes,
    settings.max_decoded_body_bytes,
    {
        BATCH_PATH: _batch_limits,
        OTLP_LOGS_PATH: _shipper_limits,
        LOKI_PUSH_PATH: _shipper_limits,
        BULK_PATH: _shipper_limits,
        INDEX_BULK_PATH: _shipper_limits,
    },
    {
        OTLP_LOGS_PATH: otlp_replies.refused,
        LOKI_PUSH_PATH: loki_replies.refused,
        BULK_PATH: elasticsearch_replies.refused,
        INDEX_BULK_PATH: elasticsearch_replies.refused,
        **dict.fromkeys(["/", *ES_PROBE_PATHS, *ES_SETUP_PATHS], elasticsearch_replies.refused),
    },
)
ingesting = authorized(Scope.INGEST)  # charged the bytes of the decoded body

# A 1,000-event batch allocates tens of thousands of short-lived objects (decoded items, validated fields, records)
# and the cyclic garbage collector kept walking them and every module loaded above, as in the consumer
# (docs/hotpath.md). What cold start loaded is frozen out of its reach; it runs less often.
gc.freeze()
gc.set_threshold(50_000, 20, 100)


# Each route's OpenAPI description (summary, answers, auth) is logpipe.edge.openapi's: the gateway publishes it.
@app.post(LOGS_PATH, middlewares=[ingesting], **POST_LOG)
def post_log(
    event: Annotated[LogEventIn, Body()],
    idempotency_key: IdempotencyKey = None,
):
    accepted = ingest_event(event, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(202, accepted.model_dump(mode="json"))


@app.post(BATCH_PATH, middlewares=[ingesting], **POST_BATCH)
def post_batch(idempotency_key: IdempotencyKey = None):  # the body is read here: JSON or NDJSON
    request = app.current_event
    batch = native.decode(request.body or "", request.headers.get("content-type", ""), settings.max_batch_events)
    answer = ingest_batch(batch, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(207 if answer.rejected else 202, answer.model_dump(mode="json"))


@app.post(OTLP_LOGS_PATH, middlewares=[ingesting], **POST_OTLP_LOGS)
def post_otlp_logs():
    body, content_type = _shipped()
    items = otlp.decode(body, content_type, settings.max_batch_events, settings.max_batch_decoded_bytes)
    answer = _accept(items, body, receipts=False)  # an OTLP answer names no record
    return otlp_replies.accepted(answer, content_type)


@app.post(LOKI_PUSH_PATH, middlewares=[ingesting], **POST_LOKI_PUSH)
def post_loki_push():
    body, content_type = _shipped()
    items = loki.decode(body, content_type, settings.max_batch_events, settings.max_batch_decoded_bytes)
    answer = _accept(items, body, receipts=False)  # a push is answered 204: no entry is named
    return loki_replies.accepted(answer)


@app.route(BULK_PATH, ["POST", "PUT"], middlewares=[ingesting], **POST_BULK)
def post_bulk():
    return _bulk(default_index=None)


@app.route(resolver_path(INDEX_BULK_PATH), ["POST", "PUT"], middlewares=[ingesting], **POST_BULK)
def post_index_bulk(index: str):
    return _bulk(default_index=index)


@app.route("/", ["GET", "HEAD"], middlewares=[ingesting], **ES_INFO)
def get_elasticsearch_info():
    return elasticsearch_replies.info(cluster_name=app.context["organization_id"])


@app.get("/_license", middlewares=[ingesting], **ES_PROBE)
def get_license():
    return elasticsearch_replies.document({"license": {"status": "active", "type": "basic", "uid": "logpipe"}})


@app.get("/_cluster/health", middlewares=[ingesting], **ES_PROBE)
def get_cluster_health():
    return elasticsearch_replies.document({"cluster_name": app.context["organization_id"], "status": "green"})


@app.route("/_index_template/<name>", ["GET", "PUT"], middlewares=[ingesting], **ES_PROBE)
def index_template(name: str):
    template = {"index_patterns": [f"{name}*"], "template": {}}
    return _setup_probe({"index_templates": [{"name": name, "index_template": template}]})


@app.route("/_ilm/policy/<name>", ["GET", "PUT"], middlewares=[ingesting], **ES_PROBE)
def ilm_policy(name: str):
    return _setup_probe({name: {"version": 1, "policy": {"phases": {}}}})


@app.route("/_ingest/pipeline/<name>", ["GET", "PUT"], middlewares=[ingesting], **ES_PROBE)
def ingest_pipeline(name: str):
    return _setup_probe({name: {"processors": []}})


def _shipped() -> tuple[bytes, str]:
    request = app.current_event.raw_event
    return body_bytes(request), (request.get("headers") or {}).get("content-type", "")


def _accept(items: list[Any], body: bytes, receipts: bool = True) -> BatchAccepted:
    """The shared batch path: validation, Kafka, receipts (for answers that name the events' ids)."""
    batch = DecodedBatch.of(items, body)
    return accept_batch(batch, settings, None, app.context["organization_id"], receipts=receipts)


def _bulk(default_index: str | None):
    started = time.monotonic()
    body, content_type = _shipped()
    bulk = esbulk.decode(body, content_type, settings.max_batch_events, settings.max_batch_decoded_bytes, default_index)
    organization_id = app.context["organization_id"]
    for item, action in zip(bulk.items, bulk.actions, strict=True):
        if action.id is not None and isinstance(item, dict):
            item["id"] = client_event_id(organization_id, action.id)
    answer = _accept(bulk.items, body)
    return elasticsearch_replies.bulk_accepted(answer, bulk.actions, took_ms=int((time.monotonic() - started) * 1000))


def _setup_probe(found: dict[str, Any]):
    """A template, policy or pipeline a shipper checks for (it exists) or installs (acknowledged)."""
    if app.current_event.http_method == "PUT":
        return elasticsearch_replies.document({"acknowledged": True})
    return elasticsearch_replies.document(found)


app.plan_routes()  # at cold start, not in each route's first request


@logger.inject_lambda_context  # the resolver sets the correlation id (logpipe.edge.resolver)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
