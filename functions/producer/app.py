"""Ingest API: validated log events from HTTP to Kafka, answered only once the broker acknowledged."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.config import get_settings
from logpipe.gateway_models import Scope
from logpipe.http import create_resolver, json_response
from logpipe.ingest import idempotency_config, ingest_event
from logpipe.middleware import authorized
from logpipe.models import ErrorBody, IngestAccepted, LogEventIn
from logpipe.observability import logger, metrics

settings = get_settings()
app = create_resolver(settings.max_body_bytes)

_ERRORS = {
    status: {"description": description, "content": {"application/json": {"model": ErrorBody}}}
    for status, description in {
        400: "Malformed JSON",
        409: "A request with this Idempotency-Key is still in progress; retry after Retry-After seconds",
        413: "A size limit was exceeded",
        415: "Not JSON",
        422: "The event breaks the schema or a limit, or the Idempotency-Key was used for another event",
        503: "Kafka unavailable; retry after Retry-After seconds",
    }.items()
}


@app.post(
    "/api/logs",
    summary="Ingest one log event",
    description=(
        "Validates the event and answers 202 once Kafka has acknowledged the write (acks=all). "
        "A retry with the same Idempotency-Key (or client `id`) gets the first answer and publishes nothing."
    ),
    tags=["ingest"],
    middlewares=[authorized(Scope.INGEST)],
    responses={
        202: {"description": "Queued", "content": {"application/json": {"model": IngestAccepted}}},
        **_ERRORS,
    },
)
def post_log(
    event: Annotated[LogEventIn, Body()],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
):
    accepted = ingest_event(event, settings, idempotency_key)
    return json_response(202, accepted.model_dump(mode="json"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
