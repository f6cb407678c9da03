"""Elasticsearch answers: the `_bulk` result per item, the errors in Elasticsearch's shape, the version document and
license stock clients read first, and harmless answers to the setup probes of Filebeat, Vector and Fluent Bit.
Every answer carries `X-Elastic-Product: Elasticsearch`, which the official clients check."""

from typing import Any

from aws_lambda_powertools.event_handler import Response

from logpipe.edge.answers import error_headers, json_response, status_for
from logpipe.edge.decoders.esbulk import BulkAction
from logpipe.errors import LogpipeError
from logpipe.models import BatchAccepted, BatchItemResult

PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}
# What `GET /` reports: an 8.x version, so 8.x clients and shippers speak their current protocol.
VERSION = {
    "number": "8.17.0",
    "build_flavor": "default",
    "build_type": "docker",
    "lucene_version": "9.12.0",
    "minimum_wire_compatibility_version": "7.17.0",
    "minimum_index_compatibility_version": "7.0.0",
}
_ERROR_TYPES = {
    400: "parse_exception",
    401: "security_exception",
    403: "security_exception",
    404: "resource_not_found_exception",
    409: "version_conflict_engine_exception",
    413: "content_too_long_exception",
    415: "media_type_header_exception",
    422: "illegal_argument_exception",
    429: "es_rejected_execution_exception",
    503: "unavailable_shards_exception",
}


def bulk_accepted(answer: BatchAccepted, actions: list[BulkAction], took_ms: int) -> Response:
    items = [_item(result, action) for result, action in zip(answer.items, actions, strict=True)]
    body = {"took": took_ms, "errors": bool(answer.rejected), "items": items}
    return json_response(200, body, dict(PRODUCT_HEADER))


def refused(error: LogpipeError, _request: dict[str, Any]) -> Response:
    status = status_for(error)
    cause = {"type": _ERROR_TYPES.get(status, "exception"), "reason": error.message}
    headers = {**PRODUCT_HEADER, **(error_headers(error) or {})}
    return json_response(status, {"error": {"root_cause": [cause], **cause}, "status": status}, headers)


def info(cluster_name: str) -> Response:
    body = {
        "name": "logpipe",
        "cluster_name": cluster_name,
        "cluster_uuid": "logpipe",
        "version": VERSION,
        "tagline": "You Know, for Search",
    }
    return json_response(200, body, dict(PRODUCT_HEADER))


def document(body: Any) -> Response:
    """A probe's harmless answer (a license, a cluster's health, an acknowledged template)."""
    return json_response(200, body, dict(PRODUCT_HEADER))


def _item(result: BatchItemResult, action: BulkAction) -> dict[str, Any]:
    if result["error"] is None:
        outcome = {"_index": action.index, "_id": action.id or str(result["id"]), "status": 201, "result": "created"}
    else:
        error = {"type": "document_parsing_exception", "reason": result["error"].message}
        outcome = {"_index": action.index, "_id": action.id, "status": 400, "error": error}
    return {action.action: outcome}
