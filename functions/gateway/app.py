"""Read and admin API: search, events, context, statuses, stats, histograms, API keys; health, the OpenAPI document
and docs page, and the log explorer page (its static files in explore/, docs/explorer.md).

Every /api route needs an API key with the route's scope and answers only with the key's organization's data.
"""

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.access import keys
from logpipe.access.models import MAX_KEYS_PER_PAGE, ApiKeyList, CreatedApiKey, NewApiKey, Scope
from logpipe.config import get_settings
from logpipe.edge.answers import json_response
from logpipe.edge.assets import AssetFolder
from logpipe.edge.middleware import authorized
from logpipe.edge.openapi import OPENAPI, SECURED, ApiDocument, describe_ingest_routes, error_responses
from logpipe.edge.powertools import serve_merged_openapi
from logpipe.edge.resolver import create_resolver
from logpipe.models import NO_NUL, Level, LogEvent
from logpipe.observability import logger, metrics
from logpipe.read import histogram, search, stats
from logpipe.read.health import cached_health
from logpipe.read.models import EventContext, EventStatus, HealthReport, Histogram, LogPage, Stats
from logpipe.read.queries import EventFilter
from logpipe.read.status import event_status

settings = get_settings()
app = create_resolver(settings.max_body_bytes)
explorer_files = AssetFolder(FilePath(__file__).parent / "explore")


def _errors(*statuses: int) -> dict[int, dict]:
    descriptions = {
        400: "A parameter cannot be used (cursor, time range)",
        401: "No API key, or an unknown or revoked one",
        403: "The API key lacks the route's scope",
        404: "Not found in the key's organization",
        422: "A parameter or the body does not match the schema, or the query ran past its time bound (query_timeout)",
        429: "Over the rate limit; retry after Retry-After seconds (RateLimit fields say more)",
        503: "A dependency is unavailable; retry after Retry-After seconds",
    }
    return error_responses({status: descriptions[status] for status in (401, 403, 422, 429, 503, *statuses)})


def _ok(model: Any, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"model": model}}}


# The filters shared by the search and the histogram.
LevelsQuery = Annotated[list[Level] | None, Query(description="Level(s) to include")]
SourceQuery = Annotated[str | None, Query(min_length=1, max_length=256, pattern=NO_NUL)]
FromQuery = Annotated[datetime | None, Query(alias="from", description="Earliest event time (inclusive)")]
ToQuery = Annotated[datetime | None, Query(description="Latest event time (exclusive)")]
TextQuery = Annotated[str | None, Query(min_length=1, max_length=512, pattern=NO_NUL, description="Full-text query")]


@app.get(
    "/api/logs",
    summary="Search the organization's events, newest first",
    description="Filters combine with AND; `level` may repeat; `q` is full-text over the message. "
    "Follow `nextCursor` for older events.",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(LogPage, "A page of events"), **_errors(400)},
)
def search_logs(
    level: LevelsQuery = None,
    source: SourceQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    q: TextQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    event_filter = EventFilter(levels=level or [], source=source, since=from_, until=to, text=q)
    page = search.list_events(app.context["organization_id"], event_filter, limit, cursor, settings)
    return json_response(200, page.model_dump(mode="json", by_alias=True))


@app.get(
    "/api/logs/histogram",
    summary="Counts per time bucket and level of the organization's events (default: the last 24 hours)",
    description="The filters of `GET /api/logs`. Buckets are a round width (1 s, 5 s, 10 s, 30 s, 1 min, 5 min, "
    "10 min, 15 min, 30 min, 1 h, 2 h, 3 h, 6 h, 12 h, 1 d, whole days) aligned on the Unix epoch, the smallest "
    f"that covers the window in at most `buckets`. Cached; at most {settings.stats_cache_seconds} s stale.",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(Histogram, "The counts, every bucket of the window oldest first"), **_errors(400)},
)
def get_histogram(
    level: LevelsQuery = None,
    source: SourceQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    q: TextQuery = None,
    buckets: Annotated[int, Query(ge=1, le=500, description="At most this many buckets")] = 60,
):
    event_filter = EventFilter(levels=level or [], source=source, since=from_, until=to, text=q)
    counts = histogram.get_histogram(app.context["organization_id"], event_filter, buckets, settings)
    return json_response(200, counts.model_dump(mode="json", by_alias=True))


@app.get(
    "/api/logs/<event_id>",
    summary="One event of the organization",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(LogEvent, "The event"), **_errors(404)},
)
def get_log(event_id: Annotated[UUID, Path()]):
    event = search.get_event(app.context["organization_id"], event_id, settings)
    return json_response(200, event.model_dump(mode="json", by_alias=True))


@app.get(
    "/api/logs/<event_id>/context",
    summary="One event and the events of its source just before and after it",
    description="Both lists are oldest first, in (timestamp, id) order, from the event's organization and source.",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(EventContext, "The event in its context"), **_errors(404)},
)
def get_log_context(
    event_id: Annotated[UUID, Path()],
    before: Annotated[int, Query(ge=0, le=100, description="Events before it")] = 10,
    after: Annotated[int, Query(ge=0, le=100, description="Events after it")] = 10,
):
    context = search.event_context(app.context["organization_id"], event_id, before, after, settings)
    return json_response(200, context.model_dump(mode="json", by_alias=True))


@app.get(
    "/api/logs/<event_id>/status",
    summary="Where an accepted event is: queued, stored or dead_lettered",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(EventStatus, "The event's status"), **_errors(404)},
)
def get_log_status(event_id: Annotated[UUID, Path()]):
    receipt = event_status(app.context["organization_id"], event_id, settings)
    return json_response(200, receipt.model_dump(mode="json", by_alias=True, exclude_none=True))


@app.get(
    "/api/stats",
    summary="Counts per level and per source over a window (default: the last 24 hours)",
    description=f"Cached; at most {settings.stats_cache_seconds} s stale (refreshed in the background before then).",
    tags=["read"],
    security=SECURED,
    middlewares=[authorized(Scope.READ)],
    responses={200: _ok(Stats, "The counts"), **_errors(400)},
)
def get_stats(
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
):
    counts = stats.get_stats(app.context["organization_id"], from_, to, settings)
    return json_response(200, counts.model_dump(mode="json", by_alias=True))


@app.post(
    "/api/keys",
    summary="Create an API key for the organization (the key is shown only in this answer)",
    tags=["admin"],
    security=SECURED,
    middlewares=[authorized(Scope.ADMIN)],
    responses={201: _ok(CreatedApiKey, "The new key"), **_errors()},
)
def create_key(new_key: Annotated[NewApiKey, Body()]):
    created = keys.create_key(app.context["organization_id"], new_key.scopes, new_key.name)
    return json_response(201, created.model_dump(mode="json", by_alias=True))


@app.get(
    "/api/keys",
    summary="The organization's API keys (never the keys themselves), oldest first",
    description=f"At most `limit` keys a page (up to {MAX_KEYS_PER_PAGE:,}); follow `nextCursor` for the next ones.",
    tags=["admin"],
    security=SECURED,
    middlewares=[authorized(Scope.ADMIN)],
    responses={200: _ok(ApiKeyList, "A page of keys"), **_errors(400)},
)
def list_keys(
    limit: Annotated[int, Query(ge=1, le=MAX_KEYS_PER_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    listed = keys.list_keys(app.context["organization_id"], limit, cursor)
    return json_response(200, listed.model_dump(mode="json", by_alias=True))


@app.delete(
    "/api/keys/<key_id>",
    summary="Revoke an API key",
    description=f"A revoked key stops working within {settings.api_key_cache_seconds:g} s.",
    tags=["admin"],
    security=SECURED,
    middlewares=[authorized(Scope.ADMIN)],
    responses={204: {"description": "Revoked"}, **_errors(404)},
)
def revoke_key(key_id: Annotated[UUID, Path()]):
    keys.revoke_key(app.context["organization_id"], key_id, settings)
    return json_response(204, None)


_HEALTH_RESPONSES = {
    200: _ok(HealthReport, "Every dependency is up"),
    503: _ok(HealthReport, "At least one dependency is down"),
}


@app.get("/health", summary="Health of the pipeline's dependencies", tags=["operations"], responses=_HEALTH_RESPONSES)
def get_health():
    return _health_answer()


@app.get(
    "/health/ready",
    summary="Readiness: the same check as /health",
    tags=["operations"],
    responses=_HEALTH_RESPONSES,
)
def get_readiness():
    return _health_answer()


@app.get("/health/live", summary="Liveness: the function answers (no dependency is probed)", tags=["operations"])
def get_liveness():
    return json_response(200, {"status": "up"})


@app.get("/openapi.json", summary="This API's OpenAPI document", tags=["operations"], include_in_schema=False)
def get_openapi():
    return Response(200, content_types.APPLICATION_JSON, api_document.get_openapi_json_schema())


_PAGE_RESPONSES = {
    200: {"description": "The file", "content": {"text/html": {}, "text/javascript": {}, "text/css": {}}},
    304: {"description": "Unchanged since the ETag in If-None-Match"},
    **error_responses({404: "No such file"}),
}


@app.get(
    "/explore",
    summary="The log explorer page (sign in with a read key in the page)",
    description="No API key needed for the page and its files; see docs/explorer.md.",
    tags=["explorer"],
    responses=_PAGE_RESPONSES,
)
def get_explorer():
    return explorer_files.answer("index.html", app.current_event.headers.get("if-none-match"))


@app.get("/explore/", summary="Redirects to /explore", tags=["explorer"], responses={308: {"description": "To it"}})
def redirect_to_explorer():
    query = app.current_event.raw_query_string
    return Response(308, None, "", {"Location": "../explore" + (f"?{query}" if query else "")})


@app.get(
    "/explore/<file_name>", summary="A file of the log explorer page", tags=["explorer"], responses=_PAGE_RESPONSES
)
def get_explorer_file(file_name: Annotated[str, Path(max_length=64)]):
    return explorer_files.answer(file_name, app.current_event.headers.get("if-none-match"))


# The published document describes the whole API a client uses: these routes and the ingest routes, which the
# producer serves and logpipe.edge.openapi declares (here on a resolver that only documents them).
_ingest_routes = create_resolver(settings.max_body_bytes)
describe_ingest_routes(_ingest_routes)
api_document = ApiDocument([app, _ingest_routes], **OPENAPI)
# Swagger UI, with its script and styles inlined from the copy Powertools ships: the page needs no network.
serve_merged_openapi(app, api_document)
app.enable_swagger(path="/docs", **OPENAPI)


def _health_answer():
    report = cached_health(settings)
    body = report.model_dump(mode="json", by_alias=True, exclude_none=True)
    if report.status == "up":
        return json_response(200, body)
    return json_response(503, body, {"Retry-After": str(settings.retry_after_seconds)})


app.plan_routes()  # at cold start, not in each route's first request


@logger.inject_lambda_context  # the resolver sets the correlation id (logpipe.edge.resolver)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
