"""The one error format and the one mapping from domain error class to HTTP status, shared by every route.

Every error leaves as {"status":"error","error":{"code","message","details"}}; 429 and 503 carry Retry-After.
A 503 shows the client a fixed message and the dependency's name; the reason (hosts, driver messages) is logged.
"""

import json
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.shared.json_encoder import Encoder
from pydantic import BaseModel

from logpipe.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    IdempotencyConflictError,
    InvalidEventError,
    InvalidQueryError,
    LogpipeError,
    MalformedRequestError,
    NotFoundError,
    OrganizationMismatchError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QueryTimeoutError,
    RateLimitedError,
    RequestInProgressError,
    UnsupportedEncodingError,
    UnsupportedMediaTypeError,
)
from logpipe.models import ErrorDetail, validation_problems
from logpipe.observability import logger


class ErrorBody(BaseModel):
    status: Literal["error"] = "error"
    error: ErrorDetail


# The one mapping from domain error to HTTP status; a class not listed answers as its nearest listed base.
STATUS_BY_ERROR: dict[type[LogpipeError], int] = {
    MalformedRequestError: 400,
    InvalidQueryError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    OrganizationMismatchError: 403,
    NotFoundError: 404,
    RequestInProgressError: 409,
    PayloadTooLargeError: 413,
    UnsupportedEncodingError: 415,
    UnsupportedMediaTypeError: 415,
    InvalidEventError: 422,
    IdempotencyConflictError: 422,
    QueryTimeoutError: 422,
    RateLimitedError: 429,
    DependencyUnavailableError: 503,
}


def status_for(error: LogpipeError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def json_response(status_code: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer, its body serialized here as the resolver would (so Powertools' response middleware, which
    would walk the body through its jsonable_encoder first, passes the text through)."""
    return Response(
        status_code=status_code,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":"), cls=Encoder),  # Powertools' default serializer
        headers=headers,
    )


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(status_code, error_body(code, message, details), headers)


def domain_error_response(error: LogpipeError) -> Response:
    """The answer for a domain error: its mapped status, its body, Retry-After when it has one."""
    if isinstance(error, DependencyUnavailableError):
        logger.warning("dependency unavailable", extra={"dependency": error.dependency, "reason": error.reason})
    return error_response(status_for(error), error.code, error.message, error.details, error_headers(error))


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(code=code, message=message, details=details)).model_dump(mode="json")


def _retry_after(error: LogpipeError) -> dict[str, str] | None:
    return None if error.retry_after_seconds is None else {"Retry-After": str(error.retry_after_seconds)}


def error_headers(error: LogpipeError) -> dict[str, str] | None:
    """Retry-After when the client may retry; RateLimit fields on a 429; the auth scheme on a 401."""
    headers = _retry_after(error) or {}
    if isinstance(error, RateLimitedError):
        headers.update(rate_limit_headers(error.quota))
    elif isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="logpipe", Basic realm="logpipe"'
    return headers or None


def rate_limit_headers(quota: Any) -> dict[str, str]:
    """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers) for a logpipe.access.ratelimit.Quota."""
    return {
        "RateLimit-Policy": f'"{quota.policy}";q={quota.limit};w={quota.window_seconds}',
        "RateLimit": f'"{quota.policy}";r={quota.remaining};t={quota.reset_seconds}',
    }


def request_problems(errors: list[Any]) -> list[dict[str, Any]]:
    """Request validation's errors as the API reports them, field paths without Powertools' `body` location."""
    return validation_problems(
        [{**error, "loc": tuple(part for part in error.get("loc", ()) if part != "body")} for error in errors]
    )
