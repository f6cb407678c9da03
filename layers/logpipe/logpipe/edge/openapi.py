"""The API's OpenAPI description, shared by the functions that serve it.

The gateway publishes one document (/openapi.json, /docs) for the whole API a client uses: its own routes and the
ingest routes the producer serves. A function never imports another, so the ingest routes are declared here: the
producer registers its handlers with these declarations, the gateway registers them on a resolver that only
documents them (`describe_ingest_routes`), and `ApiDocument` merges both resolvers' documents into one.
tests/unit/test_openapi.py checks that the published ingest operations are the producer's own.
"""

import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from pydantic import BaseModel

from logpipe.edge.answers import ErrorBody
from logpipe.models import BatchAccepted, IngestAccepted, LogEventIn

OPENAPI: dict[str, Any] = {
    "title": "logpipe",
    "version": "1.0.0",
    "description": "Log ingestion pipeline: ingest, search, stats and API keys. See docs/gateway.md.",
    "security_schemes": {
        "bearer": HTTPBearer(description="Authorization: Bearer <API key>"),
        "apiKey": APIKey(name="X-Api-Key", in_=APIKeyIn.header),
        "basic": HTTPBase(scheme="basic", description="HTTP Basic, the API key as the password (Loki clients)"),
        "elasticApiKey": HTTPBase(scheme="ApiKey", description="Authorization: ApiKey <API key> (Elasticsearch)"),
    },
}
SECURED = [{"bearer": []}, {"apiKey": []}]  # either way of presenting an API key


def error_responses(descriptions: dict[int, str]) -> dict[int, dict[str, Any]]:
    """OpenAPI responses answering the one error body, one per status."""
    return {
        status: {"description": description, "content": {"application/json": {"model": ErrorBody}}}
        for status, description in descriptions.items()
    }


# The ingest routes -------------------------------------------------------------------------------------------------

LOGS_PATH = "/api/logs"
BATCH_PATH = "/api/logs/batch"
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255)]

_INGEST_ERRORS = {
    400: "Not JSON, not UTF-8, not the declared Content-Encoding, or nested too deeply",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the ingest scope, or an event names another organization than the key's",
    409: "A request with this Idempotency-Key is still in progress; retry after Retry-After seconds",
    413: "A size limit was exceeded (body, decompressed body, message, attributes, events per batch)",
    415: "Content-Type not JSON (or NDJSON for batches), or Content-Encoding other than gzip/identity",
    429: "Over the organization's rate limit (a batch costs its number of events); retry after Retry-After seconds",
    503: "Kafka (or, with an Idempotency-Key, Redis) unavailable; retry after Retry-After seconds",
}

POST_LOG: dict[str, Any] = {
    "summary": "Ingest one log event",
    "description": (
        "Validates the event and answers 202 once Kafka has acknowledged the write (acks=all). "
        "A retry with the same Idempotency-Key (or client `id`) gets the first answer and publishes nothing. "
        "The body may be sent with Content-Encoding: gzip. Without `organizationId` the event takes the API key's."
    ),
    "tags": ["ingest"],
    "security": SECURED,
    "responses": {
        202: {"description": "Queued", "content": {"application/json": {"model": IngestAccepted}}},
        **error_responses(
            {
                **_INGEST_ERRORS,
                422: "The event breaks the schema or a limit, or the Idempotency-Key was used for another event",
            }
        ),
    },
}

POST_BATCH: dict[str, Any] = {
    "summary": "Ingest a batch of log events",
    "description": (
        'Body: a JSON array of events, {"events": [...]}, or NDJSON (Content-Type: application/x-ndjson, one '
        "event per line, CRLF tolerated), optionally Content-Encoding: gzip. Every item is validated on its own; "
        "the valid ones are published with one wait for Kafka's acknowledgement. 202 when every item was "
        "accepted, 207 when some were rejected (each rejected item carries its error), 422 `batch_rejected` "
        "when none was. An Idempotency-Key makes the whole batch idempotent; event ids under a key are derived "
        "from (organization, key, index)."
    ),
    "tags": ["ingest"],
    "security": SECURED,
    "responses": {
        202: {"description": "Every event queued", "content": {"application/json": {"model": BatchAccepted}}},
        207: {"description": "Some events queued", "content": {"application/json": {"model": BatchAccepted}}},
        **error_responses(
            {**_INGEST_ERRORS, 422: "No event of the batch was valid (details.items), or the batch is empty"}
        ),
    },
}


# The shipper protocols' routes ---------------------------------------------------------------------------------------

OTLP_LOGS_PATH = "/v1/logs"
LOKI_PUSH_PATH = "/loki/api/v1/push"
BULK_PATH = "/_bulk"
INDEX_BULK_PATH = "/{index}/_bulk"
# What Elasticsearch clients and shippers ask before they send, answered harmlessly (docs/shippers.md).
ES_PROBE_PATHS = ("/_license", "/_cluster/health")
ES_SETUP_PATHS = ("/_index_template/{name}", "/_ilm/policy/{name}", "/_ingest/pipeline/{name}")
SHIPPER_SECURITY = [{"bearer": []}, {"apiKey": []}, {"basic": []}, {"elasticApiKey": []}]

_SHIPPER_ERRORS = {
    400: "The body cannot be decoded (the protocol's error shape)",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the ingest scope, or X-Scope-OrgID names another organization",
    413: "The body, once decompressed, or its number of records is over the limits",
    415: "A Content-Type or Content-Encoding the protocol does not use",
    429: "Over the organization's rate limit; retry after Retry-After seconds",
    503: "Kafka unavailable; retry after Retry-After seconds",
}


def _shipper_route(summary: str, description: str, success: dict[int, str]) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "tags": ["shippers"],
        "security": SHIPPER_SECURITY,
        "responses": {
            **{status: {"description": text} for status, text in success.items()},
            **{status: {"description": text} for status, text in _SHIPPER_ERRORS.items()},
        },
    }


POST_OTLP_LOGS = _shipper_route(
    "OTLP/HTTP logs (protobuf or JSON, optionally gzip)",
    "An ExportLogsServiceRequest; every record goes the batch path. 200 with an empty ExportLogsServiceResponse, or "
    "with partial_success when records were refused; errors carry a google.rpc.Status. Mapping: docs/shippers.md.",
    {200: "Accepted (partial_success names refused records)"},
)
POST_LOKI_PUSH = _shipper_route(
    "Loki push (snappy protobuf, or JSON optionally gzip)",
    "A PushRequest; every entry goes the batch path. 204 when every entry was accepted; 400 with a plain-text "
    "reason naming refused entries (the others are stored). Mapping: docs/shippers.md.",
    {204: "Every entry accepted"},
)
POST_BULK = _shipper_route(
    "Elasticsearch _bulk (NDJSON create/index actions, optionally gzip)",
    "Action and document lines; every document goes the batch path. 200 with one result per action "
    "(status 201, or an error). update and delete are refused per item. Mapping: docs/shippers.md.",
    {200: "Per-item results"},
)
ES_INFO = _shipper_route(
    "Elasticsearch version document (what clients read before they send)",
    "An 8.x version document with X-Elastic-Product: Elasticsearch.",
    {200: "The version document"},
)
ES_PROBE = _shipper_route(
    "A probe of Elasticsearch clients and shippers, answered harmlessly",
    "License, cluster health, or an index template, ILM policy or ingest pipeline that shippers check or install: "
    "logpipe keeps no such thing and answers that it exists or was acknowledged.",
    {200: "A harmless answer"},
)


# (path, method, declaration) of every shipper route, as template.yaml lists them.
SHIPPER_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    (OTLP_LOGS_PATH, "POST", POST_OTLP_LOGS),
    (LOKI_PUSH_PATH, "POST", POST_LOKI_PUSH),
    *[(path, method, POST_BULK) for path in (BULK_PATH, INDEX_BULK_PATH) for method in ("POST", "PUT")],
    ("/", "GET", ES_INFO),
    ("/", "HEAD", ES_INFO),
    *[(path, "GET", ES_PROBE) for path in ES_PROBE_PATHS],
    *[(path, method, ES_PROBE) for path in ES_SETUP_PATHS for method in ("GET", "PUT")],
]


class EventsEnvelope(BaseModel):
    """A batch as {"events": [...]}."""

    events: list[LogEventIn]


def describe_ingest_routes(resolver: ApiGatewayResolver) -> None:
    """Declare the ingest routes on a resolver that only documents them: it never resolves a request (the producer
    serves them). The parameters are the producer's handlers'; the batch body, which the producer's handler reads
    itself (JSON or NDJSON), is declared here as its JSON shapes."""

    @resolver.post(LOGS_PATH, **POST_LOG)
    def post_log(event: Annotated[LogEventIn, Body()], idempotency_key: IdempotencyKey = None) -> None:
        """Served by functions/producer/app.py."""

    @resolver.post(BATCH_PATH, **POST_BATCH)
    def post_batch(
        batch: Annotated[list[LogEventIn] | EventsEnvelope, Body(description="A JSON array of events or {events}")],
        idempotency_key: IdempotencyKey = None,
    ) -> None:
        """Served by functions/producer/app.py."""

    for path, method, declaration in SHIPPER_ROUTES:
        resolver.route(resolver_path(path), method, **declaration)(_served_by_producer(path, method))


def resolver_path(path: str) -> str:
    """A route path as the resolver writes it (`/<index>/_bulk`) from API Gateway's (`/{index}/_bulk`)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def _served_by_producer(path: str, method: str) -> Callable[..., None]:
    def served(**_parameters: Any) -> None:
        """Served by functions/producer/app.py."""

    words = re.sub(r"\W+", "_", path).strip("_") or "root"
    served.__name__ = f"{method.lower()}_{words}"
    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    served.__signature__ = inspect.Signature(parameters)  # the path's parameters, as the producer's handler takes
    return served


class ApiDocument(OpenAPIMerge):
    """One OpenAPI document for the routes of several resolvers (Powertools' OpenAPIMerge, a route declared twice
    is an error), generated on first use: generating it takes about 0.1 s, too much for every cold start."""

    def __init__(self, resolvers: list[ApiGatewayResolver], **config: Any) -> None:
        super().__init__(**config, on_conflict="error")
        self._pending = list(resolvers)
        self._resolver_config = config

    def get_openapi_schema(self) -> dict[str, Any]:
        while self._pending:
            self.add_schema(self._pending.pop(0).get_openapi_schema(**self._resolver_config))
        return super().get_openapi_schema()
