"""The API functions' resolver: Powertools' HTTP API resolver with validation, the body decoded only once the caller
is known, and every error answered in the one format (logpipe.edge.answers)."""

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from logpipe.edge.answers import (
    domain_error_response,
    error_response,
    rate_limit_headers,
    request_problems,
)
from logpipe.edge.body import BodyLimits, decoded_request, loads
from logpipe.edge.powertools import install_validation, plan_routes, replace_current_request
from logpipe.errors import LogpipeError
from logpipe.observability import logger

# A route's answer to a domain error, given the error and the API Gateway request.
ErrorReply = Callable[[LogpipeError, dict[str, Any]], Response]


class LogpipeResolver(APIGatewayHttpResolver):
    """The HTTP API resolver with validation on. Every request's log lines carry its API Gateway request id as
    correlation id (read here, not by Logger.inject_lambda_context's JMESPath query: 11 µs against 0.2 µs).

    A request is routed without its body being read. `decode_body` size-checks it, undoes its Content-Encoding
    (gzip, bounded) and checks it is UTF-8, within the route path's limits; the route's authentication calls it
    once the key is accepted (logpipe.edge.middleware), and request validation does on routes without one. So an
    unauthenticated request costs no inflating, parsing or validation of its body."""

    def __init__(
        self,
        body_limits: BodyLimits,
        route_body_limits: Mapping[str, BodyLimits],
        route_error_replies: Mapping[str, ErrorReply],
    ) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=_object_body)
        install_validation(self, self.decode_body)
        self.body_limits = body_limits
        self.route_body_limits = dict(route_body_limits)
        self.route_error_replies = dict(route_error_replies)

    def error_reply(self, error: LogpipeError, request: dict[str, Any]) -> Response:
        """The answer to a domain error in the route's protocol (logpipe's error body unless the route has its own)."""
        reply = self.route_error_replies.get(_route_path(request))
        return domain_error_response(error) if reply is None else reply(error, request)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
        return super().resolve(event, context)

    def plan_routes(self) -> None:
        """Work out each registered route's parameters and validation plan now: call it at cold start, after the
        routes. Powertools would on each route's first request (about 10 ms of CPU for an ingest route)."""
        plan_routes(self)

    def decode_body(self) -> None:
        """Make the current request's body checked text (or a binary route's bytes), once per request.

        Raises MalformedRequestError (400), UnsupportedEncodingError (415) or PayloadTooLargeError (413)."""
        if self.context.get(_BODY_DECODED):
            return
        request = self.current_event.raw_event  # an API Gateway HTTP API (payload 2.0) request
        limits = self.route_body_limits.get(_route_path(request), self.body_limits)
        decoded = decoded_request(request, limits)
        if decoded is not request:
            replace_current_request(self, decoded)
        self.context[_BODY_DECODED] = True


_BODY_DECODED = "_body_decoded"


def _route_path(request: dict[str, Any]) -> str:
    """The path of the route API Gateway matched (`/{index}/_bulk`), from the routeKey "METHOD /path"."""
    route_path = (request.get("routeKey") or "").partition(" ")[2]
    return route_path or request.get("rawPath", "")


def create_resolver(
    max_body_bytes: int,
    max_decoded_body_bytes: int | None = None,
    route_body_limits: Mapping[str, BodyLimits] | None = None,
    route_error_replies: Mapping[str, ErrorReply] | None = None,
) -> LogpipeResolver:
    """A resolver whose routes take bodies up to `max_body_bytes` as sent and `max_decoded_body_bytes` after
    Content-Encoding (default: the same), except the route paths named in `route_body_limits`; the routes named
    in `route_error_replies` answer domain errors in their protocol's shape."""
    limits = BodyLimits(max_body_bytes, max_decoded_body_bytes or max_body_bytes)
    app = LogpipeResolver(limits, route_body_limits or {}, route_error_replies or {})
    app.exception_handler(LogpipeError)(
        _with_rate_limit_of(app, lambda error: app.error_reply(error, app.current_event.raw_event))
    )
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


def _validation_error(error: RequestValidationError) -> Response:
    problems = request_problems(error.errors())
    if any(problem["type"] == "json_invalid" for problem in problems):
        return error_response(400, "malformed_json", "The request body is not valid JSON")
    return error_response(422, "validation_failed", "The request does not match the schema", problems)


def _unsupported_content_type(_error: RequestUnsupportedContentType) -> Response:
    return error_response(415, "unsupported_media_type", "Content-Type must be application/json")


def _not_found(_error: RouteNotFoundError) -> Response:
    return error_response(404, "not_found", "No such route")


def _unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error", extra={"error_type": type(error).__name__})
    return error_response(500, "internal_error", "Internal server error")


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
