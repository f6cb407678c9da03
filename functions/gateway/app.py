"""Read and admin API. For now: GET /health, reporting PostgreSQL, Redis and Kafka."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.config import get_settings
from logpipe.health import check_health
from logpipe.http import create_resolver, json_response
from logpipe.models import HealthReport
from logpipe.observability import logger, metrics

settings = get_settings()
app = create_resolver(settings.max_body_bytes)


@app.get(
    "/health",
    summary="Health of the pipeline's dependencies",
    tags=["operations"],
    responses={
        200: {"description": "All dependencies up", "content": {"application/json": {"model": HealthReport}}},
        503: {
            "description": "At least one dependency down",
            "content": {"application/json": {"model": HealthReport}},
        },
    },
)
def get_health():
    report = check_health(settings)
    body = report.model_dump(mode="json", by_alias=True)
    if report.status == "up":
        return json_response(200, body)
    return json_response(503, body, {"Retry-After": str(settings.retry_after_seconds)})


@logger.inject_lambda_context  # the resolver sets the correlation id (logpipe.http)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
