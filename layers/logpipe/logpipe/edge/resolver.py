"""HTTP shaping shared by the API functions: the resolver factory, the one error format and the one mapping
from domain error class to status.

Every error leaves as {"status":"error","error":{"code","message","details"}}; 429 and 503 carry Retry-After.
A 503 shows the client a fixed message and the dependency's name; the reason (hosts, driver messages) is logged.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder, ResponseEventT, Route
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    APPLICATION_JSON_CONTENT_TYPE,
    OpenAPIRequestValidationMiddleware,
    OpenAPIResponseValidationMiddleware,
    _is_or_contains_sequence,
    _request_body_to_args,
    _request_params_to_args,
    _validate_field,
)
from aws_lambda_powertools.event_handler.openapi.compat import ModelField, _normalize_errors
from aws_lambda_powertools.event_handler.openapi.dependant import is_scalar_field
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.shared.json_encoder import Encoder

from logpipe.edge.body import BodyLimits, decoded_event, loads
from logpipe.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    EventNotFoundError,
    IdempotencyConflictError,
    InvalidEventError,
    InvalidQueryError,
    LogpipeError,
    MalformedRequestError,
    OrganizationMismatchError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestInProgressError,
    UnsupportedEncodingError,
    UnsupportedMediaTypeError,
)
from logpipe.models import ErrorBody, ErrorDetail, validation_problems
from logpipe.observability import logger

# The one mapping from domain error to HTTP status; a class not listed answers as its nearest listed base.
STATUS_BY_ERROR: dict[type[LogpipeError], int] = {
    MalformedRequestError: 400,
    InvalidQueryError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    OrganizationMismatchError: 403,
    EventNotFoundError: 404,
    RequestInProgressError: 409,
    PayloadTooLargeError: 413,
    UnsupportedEncodingError: 415,
    UnsupportedMediaTypeError: 415,
    InvalidEventError: 422,
    IdempotencyConflictError: 422,
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
    return error_response(status_for(error), error.code, error.message, error.details, _headers_for(error))


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(code=code, message=message, details=details)).model_dump(mode="json")


# What request validation raises: kept in the context under _REQUEST_ERROR until the route's middlewares have run.
_REQUEST_ERRORS = (RequestValidationError, RequestUnsupportedContentType, MalformedRequestError)
_REQUEST_ERROR = "_request_error"


@dataclass(frozen=True)
class _RoutePlan:
    """What request validation needs to know about a route, worked out once."""

    plain: bool  # nothing but scalar headers and a body
    model_body: ModelField | None  # the one body parameter when it is the whole (non-sequence) body


class RouteRequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation for HTTP API (v2) events, without the per-request work that depends only
    on the route.

    Powertools asks of every parameter, on every request, whether its annotation is scalar, complex or a
    sequence, and copies the headers into case-insensitive dicts (splitting values on commas, then joining them
    back for scalar parameters): about a fifth of a small request's CPU. Here a route whose parameters are only
    scalar headers and a body (as the ingest routes) is validated by the same Powertools functions, fed the
    event's headers as sent (names lower-cased), and a JSON object body goes straight to its model's field;
    any other route or body takes Powertools' own path unchanged.

    Powertools runs request validation before the route's middlewares; its verdict is given after them (by
    `_ResponseValidation`), so a request without a valid key is a 401, and a key without the scope a 403, whatever
    its parameters and body: the caller learns nothing of the schema before authenticating.
    """

    def __init__(self) -> None:
        super().__init__()
        self._plans: dict[Route, _RoutePlan] = {}

    def handler(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        try:
            self._validate(app)
        except _REQUEST_ERRORS as error:
            app.context[_REQUEST_ERROR] = error
        return next_middleware(app)

    def _validate(self, app: APIGatewayHttpResolver) -> None:
        """Puts the route's validated arguments in the context, or raises the request's error."""
        route: Route = app.context["_route"]
        plan = self._plan(route)
        if not plan.plain:
            super().handler(app, _stop)  # Powertools' own validation, which stores the arguments and calls _stop
            return
        headers = {name.lower(): value for name, value in (app.current_event.get("headers") or {}).items()}
        values, errors = _request_params_to_args(route.dependant.header_params, headers)
        if route.dependant.body_params:
            values.update(self._validated_body(route, plan, self._body(app, headers), errors))
        if errors:
            raise RequestValidationError(_normalize_errors(errors))
        app.context["_route_args"] = values

    def _plan(self, route: Route) -> _RoutePlan:
        plan = self._plans.get(route)
        if plan is None:
            dependant = route.dependant
            plain = not (dependant.path_params or dependant.query_params or dependant.cookie_params) and all(
                is_scalar_field(param) for param in dependant.header_params
            )
            body = dependant.body_params
            whole_body = (
                len(body) == 1
                and not getattr(body[0].field_info, "embed", None)
                and not _is_or_contains_sequence(body[0].field_info.annotation)
            )
            plan = self._plans[route] = _RoutePlan(plain, body[0] if whole_body else None)
        return plan

    def _body(self, app: APIGatewayHttpResolver, headers: Mapping[str, str]) -> Any:
        content_type = headers.get("content-type", "").strip()
        if not content_type or content_type.startswith(APPLICATION_JSON_CONTENT_TYPE):
            return self._parse_json_data(app)
        return self._get_body(app)  # Powertools' answer to any other content type

    @staticmethod
    def _validated_body(route: Route, plan: _RoutePlan, body: Any, errors: list[Any]) -> dict[str, Any]:
        field = plan.model_body
        if field is not None and isinstance(body, dict):  # what Powertools would hand the field unchanged
            return {field.name: _validate_field(field=field, value=body, loc=("body",), existing_errors=errors)}
        values, body_errors = _request_body_to_args(route.dependant.body_params, body)
        errors.extend(body_errors)
        return values


class _ResponseValidation(OpenAPIResponseValidationMiddleware):
    """Powertools' response validation (the last middleware before the route's function), which first gives the
    request validation's verdict: raises the error RouteRequestValidation kept, once the route's middlewares
    (authentication, scope, rate limit) have let the request through."""

    def handler(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        error = app.context.get(_REQUEST_ERROR)
        if error is not None:
            raise error
        return super().handler(app, next_middleware)


def _stop(_app: APIGatewayHttpResolver) -> None:
    """The next middleware of a validation that must not go on."""


class _ResponseBuilder(ResponseBuilder[ResponseEventT]):
    """Powertools' response builder, except that the request's Accept-Encoding (a case-insensitive copy of every
    header, on every answer) is only looked at when the route or the response asks for compression."""

    @staticmethod
    def _has_compression_enabled(
        route_compression: bool, response_compression: bool | None, event: ResponseEventT
    ) -> bool:
        wanted = route_compression if response_compression is None else response_compression
        return wanted and ResponseBuilder._has_compression_enabled(route_compression, response_compression, event)


class LogpipeResolver(APIGatewayHttpResolver):
    """The HTTP API resolver with validation on. Every request's log lines carry its API Gateway request id as
    correlation id (read here, not by Logger.inject_lambda_context's JMESPath query: 11 µs against 0.2 µs).
    Before routing, every request's body is size-checked, its Content-Encoding undone (gzip, bounded) and checked
    to be UTF-8; route paths may have their own limits."""

    def __init__(self, body_limits: BodyLimits, route_body_limits: Mapping[str, BodyLimits]) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=_object_body)
        self._response_builder_class = _ResponseBuilder
        # Powertools creates these two on the first route call unless present; the first validates the request,
        # the last (after the route's middlewares) answers its errors, then validates the response as Powertools does.
        self._request_validation_middleware = RouteRequestValidation()
        self._response_validation_middleware = _ResponseValidation(
            validation_serializer=self._serializer,
            has_response_validation_error=self._has_response_validation_error,
        )
        self.body_limits = body_limits
        self.route_body_limits = dict(route_body_limits)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
        limits = self.route_body_limits.get(event.get("rawPath", ""), self.body_limits)
        try:
            event = decoded_event(event, limits)
        except LogpipeError as error:
            return _proxy_error(error)
        return super().resolve(event, context)


def create_resolver(
    max_body_bytes: int,
    max_decoded_body_bytes: int | None = None,
    route_body_limits: Mapping[str, BodyLimits] | None = None,
) -> LogpipeResolver:
    """A resolver whose routes take bodies up to `max_body_bytes` as sent and `max_decoded_body_bytes` after
    Content-Encoding (default: the same), except the paths named in `route_body_limits`."""
    limits = BodyLimits(max_body_bytes, max_decoded_body_bytes or max_body_bytes)
    app = LogpipeResolver(limits, route_body_limits or {})
    app.exception_handler(LogpipeError)(_with_rate_limit_of(app, domain_error_response))
    app.exception_handler(RequestValidationError)(_with_rate_limit_of(app, _validation_error))
    app.exception_handler(RequestUnsupportedContentType)(_with_rate_limit_of(app, _unsupported_content_type))
    app.not_found(_not_found)
    app.exception_handler(Exception)(_unexpected_error)
    return app


def _object_body(text: str) -> Any:
    """The JSON body of a validated route. Powertools would quietly take the first element of a top-level array
    for an object parameter (dropping the rest), so an array is refused here; a route that reads an array
    parses the body itself (as POST /api/logs/batch does)."""
    document = loads(text)
    if isinstance(document, list):
        raise RequestValidationError(
            [{"type": "model_type", "loc": ("body",), "msg": "Input should be a JSON object, not an array"}]
        )
    return document


def _retry_after(error: LogpipeError) -> dict[str, str] | None:
    return None if error.retry_after_seconds is None else {"Retry-After": str(error.retry_after_seconds)}


def _headers_for(error: LogpipeError) -> dict[str, str] | None:
    """Retry-After when the client may retry; RateLimit fields on a 429; the auth scheme on a 401."""
    headers = _retry_after(error) or {}
    if isinstance(error, RateLimitedError):
        headers.update(rate_limit_headers(error.quota))
    elif isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="logpipe"'
    return headers or None


def _validation_error(error: RequestValidationError) -> Response:
    problems = validation_problems(error.errors())
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


def _proxy_error(error: LogpipeError) -> dict[str, Any]:
    """An HTTP API answer built without a resolver, for requests refused before routing."""
    return {
        "statusCode": status_for(error),
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **(_headers_for(error) or {})},
        "body": json.dumps(error_body(error.code, error.message, error.details)),
        "isBase64Encoded": False,
    }


def with_rate_limit(app: APIGatewayHttpResolver, response: Response) -> Response:
    """The answer with the caller's RateLimit fields, once the route's middleware took from the organization's
    bucket (logpipe.edge.middleware.charge keeps the quota in the context): errors answered after that carry them
    too."""
    quota = app.context.get("quota")
    if quota is not None:
        response.headers.update(rate_limit_headers(quota))
    return response


def _with_rate_limit_of(app: APIGatewayHttpResolver, answer: Callable[[Any], Response]) -> Callable[[Any], Response]:
    return lambda error: with_rate_limit(app, answer(error))


def rate_limit_headers(quota: Any) -> dict[str, str]:
    """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers) for a logpipe.access.ratelimit.Quota."""
    return {
        "RateLimit-Policy": f'"{quota.policy}";q={quota.limit};w={quota.window_seconds}',
        "RateLimit": f'"{quota.policy}";r={quota.remaining};t={quota.reset_seconds}',
    }
