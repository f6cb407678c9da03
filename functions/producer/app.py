"""Ingest API: validated log events from HTTP to Kafka, answered only once the broker acknowledged."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.access.models import Scope
from logpipe.config import get_settings
from logpipe.edge.answers import json_response
from logpipe.edge.body import BodyLimits
from logpipe.edge.decoders import native
from logpipe.edge.middleware import authorized, charge
from logpipe.edge.openapi import BATCH_PATH, LOGS_PATH, POST_BATCH, POST_LOG, IdempotencyKey
from logpipe.edge.resolver import create_resolver
from logpipe.ingest import idempotency
from logpipe.ingest.intake import ingest_batch, ingest_event
from logpipe.models import LogEventIn
from logpipe.observability import logger, metrics

settings = get_settings()
app = create_resolver(
    settings.max_body_bytes,
    settings.max_decoded_body_bytes,
    {BATCH_PATH: BodyLimits(settings.max_batch_body_bytes, settings.max_batch_decoded_bytes)},
)


# Each route's OpenAPI description (summary, answers, auth) is logpipe.edge.openapi's: the gateway publishes it.
@app.post(LOGS_PATH, middlewares=[authorized(Scope.INGEST)], **POST_LOG)
def post_log(
    event: Annotated[LogEventIn, Body()],
    idempotency_key: IdempotencyKey = None,
):
    accepted = ingest_event(event, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(202, accepted.model_dump(mode="json"))


@app.post(BATCH_PATH, middlewares=[authorized(Scope.INGEST, charge_one=False)], **POST_BATCH)
def post_batch(idempotency_key: IdempotencyKey = None):  # the body is read here: JSON or NDJSON
    request = app.current_event
    batch = native.decode(request.body or "", request.headers.get("content-type", ""), settings.max_batch_events)
    charge(app, len(batch.items))  # every event of the batch counts against the organization's rate limit
    answer = ingest_batch(batch, settings, idempotency_key, app.context.get("organization_id"))
    return json_response(207 if answer.rejected else 202, answer.model_dump(mode="json"))


@logger.inject_lambda_context  # the resolver sets the correlation id (logpipe.edge.resolver)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
