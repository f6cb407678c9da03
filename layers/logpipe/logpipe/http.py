"""HTTP shaping shared by the API functions: the resolver factory and the one error format.

Every error leaves as {"status":"error","error":{"code","message","details"}}; domain errors carry their
own status, validation failures become 400/415/422, a failing dependency 503 with Retry-After.
"""

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from logpipe.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    EventNotFoundError,
    InvalidQueryError,
    LogpipeError,
    OrganizationMismatchError,
    PermissionDeniedError,
    RateLimitedError,
)
from logpipe.models import ErrorBody, ErrorDetail
from logpipe.observability import logger


def json_response(status_code: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status_code, _error_body(code, message, details), headers)


class LogpipeResolver(APIGatewayHttpResolver):
    """The HTTP API resolver with validation on and a body-size limit checked before anything parses the body."""

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(enable_validation=True)
        self.max_body_bytes = max_body_bytes

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        size = _body_size(event)
        if size > self.max_body_bytes:
            return _proxy_error(
                413, "payload_too_large", f"The body is {size} bytes; the limit is {self.max_body_bytes}"
            )
        return super().resolve(event, context)


def create_resolver(max_body_bytes: int) -> LogpipeResolver:
    app = LogpipeResolver(max_body_bytes)
    app.exception_handler(LogpipeError)(_domain_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_content_type)
    app.not_found(_not_found)
    app.exception_handler(Exception)(_unexpected_error)
    return app


def _domain_error(error: LogpipeError) -> Response:
    headers = {} if error.retry_after_seconds is None else {"Retry-After": str(error.retry_after_seconds)}
    if isinstance(error, DependencyUnavailableError):
        logger.warning("dependency unavailable", extra={"error": error.message})
    headers.update(_gateway_headers(error))
    return error_response(_status_of(error), error.code, error.message, error.details, headers or None)


def _validation_error(error: RequestValidationError) -> Response:
    problems = [
        {
            "field": _field_path(problem.get("loc", ())),
            "message": problem.get("msg", ""),
            "type": problem.get("type"),
        }
        for problem in error.errors()
    ]
    if any(problem["type"] == "json_invalid" for problem in problems):
        return error_response(400, "malformed_json", "The request body is not valid JSON")
    return error_response(422, "validation_failed", "The request does not match the schema", problems)


def _unsupported_content_type(_error: RequestUnsupportedContentType) -> Response:
    return error_response(415, "unsupported_media_type", "Content-Type must be application/json")


def _not_found(_error: NotFoundError) -> Response:
    return error_response(404, "not_found", "No such route")


def _unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error", extra={"error_type": type(error).__name__})
    return error_response(500, "internal_error", "Internal server error")


def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(base64.b64decode(body))
    return len(body.encode())


def _error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(code=code, message=message, details=details)).model_dump(mode="json")


def _proxy_error(status_code: int, code: str, message: str) -> dict[str, Any]:
    """An HTTP API answer built without a resolver, for requests refused before routing."""
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(_error_body(code, message)),
        "isBase64Encoded": False,
    }


def _field_path(location: Any) -> str:
    parts = [str(part) for part in location if part != "body"]
    return ".".join(parts) or "body"


# Gateway errors carry no status; this is their part of the one error-to-status mapping.
_GATEWAY_STATUSES: dict[type[LogpipeError], int] = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    OrganizationMismatchError: 403,
    RateLimitedError: 429,
    EventNotFoundError: 404,
    InvalidQueryError: 400,
}


def _status_of(error: LogpipeError) -> int:
    return next((status for cls, status in _GATEWAY_STATUSES.items() if isinstance(error, cls)), error.status_code)


def _gateway_headers(error: LogpipeError) -> dict[str, str]:
    if isinstance(error, RateLimitedError):
        return rate_limit_headers(error.quota)
    if isinstance(error, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="logpipe"'}
    return {}


def rate_limit_headers(quota: Any) -> dict[str, str]:
    """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers) for a logpipe.ratelimit.Quota."""
    return {
        "RateLimit-Policy": f'"{quota.policy}";q={quota.limit};w={quota.window_seconds}',
        "RateLimit": f'"{quota.policy}";r={quota.remaining};t={quota.reset_seconds}',
    }
