"""Ingest API: validated log events from HTTP to Kafka, answered only once the broker acknowledged."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.body import BodyLimits
from logpipe.config import get_settings
from logpipe.gateway_models import Scope
from logpipe.http import create_resolver, json_response
from logpipe.ingest import idempotency_config, ingest_batch, ingest_event, read_batch
from logpipe.middleware import authorized, charge
from logpipe.models import BatchAccepted, ErrorBody, IngestAccepted, LogEventIn
from logpipe.observability import logger, metrics

BATCH_PATH = "/api/logs/batch"

settings = get_settings()
app = create_resolver(
    settings.max_body_bytes,
    settings.max_decoded_body_bytes,
    {BATCH_PATH: BodyLimits(settings.max_batch_body_bytes, settings.max_batch_decoded_bytes)},
)


def _errors(descriptions: dict[int, str]) -> dict[int, dict[str, Any]]:
    return {
        status: {"description": description, "content": {"application/json": {"model": ErrorBody}}}
        for status, description in descriptions.items()
    }


_COMMON_ERRORS = {
    400: "Not JSON, not UTF-8, not the declared Content-Encoding, or nested too deeply",
    403: "The event names another organization than the API key's",
    409: "A request with this Idempotency-Key is still in progress; retry after Retry-After seconds",
    413: "A size limit was exceeded (body, decompressed body, message, attributes, events per batch)",
    415: "Content-Type not JSON (or NDJSON for batches), or Content-Encoding other than gzip/identity",
    503: "Kafka (or, with an Idempotency-Key, Redis) unavailable; retry after Retry-After seconds",
}


@app.post(
    "/api/logs",
    summary="Ingest one log event",
    description=(
        "Validates the event and answers 202 once Kafka has acknowledged the write (acks=all). "
        "A retry with the same Idempotency-Key (or client `id`) gets the first answer and publishes nothing. "
        "The body may be sent with Content-Encoding: gzip."
    ),
    tags=["ingest"],
    middlewares=[authorized(Scope.INGEST)],
    responses={
        202: {"description": "Queued", "content": {"application/json": {"model": IngestAccepted}}},
        **_errors(
            {
                **_COMMON_ERRORS,
                422: "The event breaks the schema or a limit, or the Idempotency-Key was used for another event",
            }
        ),
    },
)
def post_log(
    event: Annotated[LogEventIn, Body()],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
):
    accepted = ingest_event(event, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(202, accepted.model_dump(mode="json"))


@app.post(
    BATCH_PATH,
    summary="Ingest a batch of log events",
    description=(
        'Body: a JSON array of events, {"events": [...]}, or NDJSON (Content-Type: application/x-ndjson, one '
        "event per line, CRLF tolerated), optionally Content-Encoding: gzip. Every item is validated on its own; "
        "the valid ones are published with one wait for Kafka's acknowledgement. 202 when every item was "
        "accepted, 207 when some were rejected (each rejected item carries its error), 422 `batch_rejected` "
        "when none was. An Idempotency-Key makes the whole batch idempotent; event ids under a key are derived "
        "from (organization, key, index)."
    ),
    tags=["ingest"],
    middlewares=[authorized(Scope.INGEST, charge_one=False)],
    responses={
        202: {"description": "Every event queued", "content": {"application/json": {"model": BatchAccepted}}},
        207: {"description": "Some events queued", "content": {"application/json": {"model": BatchAccepted}}},
        **_errors({**_COMMON_ERRORS, 422: "No event of the batch was valid (details.items), or the batch is empty"}),
    },
)
def post_batch(idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None):
    request = app.current_event
    batch = read_batch(request.body or "", request.headers.get("content-type", ""), settings)
    charge(app, len(batch.items))  # every event of the batch counts against the organization's rate limit
    answer = ingest_batch(batch, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(207 if answer.rejected else 202, answer.model_dump(mode="json"))


@logger.inject_lambda_context  # the resolver sets the correlation id (logpipe.http)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
