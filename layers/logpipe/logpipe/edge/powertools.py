"""Powertools' private internals, used here and nowhere else (tests/unit/edge/test_powertools.py pins the behaviour
relied on, so an upgrade that changes it fails there first).

- Request validation without the per-request work that depends only on the route (`RouteRequestValidation`),
  done after the route's middlewares (by `ResponseValidation`), so authentication answers first and an
  unauthenticated request's body is never decoded, parsed or validated.
- Replacing the request being resolved by its decoded form (`replace_current_request`).
- A response builder that reads Accept-Encoding only when compression is asked for.
- Working out every route's parameters and validation plan at cold start (`plan_routes`), not on its first request.
- The resolver attributes Powertools reads for these, and the merged OpenAPI document Swagger UI renders.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter, ResponseBuilder, ResponseEventT, Route
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
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge


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

    Powertools runs request validation first, before the route's middlewares; logpipe runs it last, from
    `ResponseValidation` (Powertools' first slot gets `after_the_route_middlewares`), so a request without a valid
    key is a 401, and a key without the scope a 403, before anything of its parameters and body is looked at: the
    caller learns nothing of the schema, and an unauthenticated request costs no parsing or validation.
    """

    def __init__(self) -> None:
        super().__init__()
        self._plans: dict[Route, _RoutePlan] = {}

    def validate(self, app: APIGatewayHttpResolver) -> None:
        """Puts the route's validated arguments in the context, or raises the request's error."""
        route: Route = app.context["_route"]
        plan = self.plan(route)
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

    def plan(self, route: Route) -> _RoutePlan:
        """The route's plan, worked out on the first call (Powertools' `route.dependant` with it: the parameters and
        their pydantic validators, about 10 ms of CPU for an ingest route)."""
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


def after_the_route_middlewares(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """What fills Powertools' request-validation slot (the first middleware): nothing, the request is validated
    after the route's middlewares instead."""
    return next_middleware(app)


class ResponseValidation(OpenAPIResponseValidationMiddleware):
    """Powertools' response validation (the last middleware before the route's function), which first prepares the
    request (`prepare_request`: decoding its body) and validates it, once the route's middlewares (authentication,
    scope, rate limit) have let it through."""

    def __init__(
        self,
        request_validation: RouteRequestValidation,
        prepare_request: Callable[[], None],
        **powertools_arguments: Any,
    ) -> None:
        super().__init__(**powertools_arguments)
        self._request_validation = request_validation
        self._prepare_request = prepare_request

    def handler(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        self._prepare_request()
        self._request_validation.validate(app)
        return super().handler(app, next_middleware)


def _stop(_app: APIGatewayHttpResolver) -> None:
    """The next middleware of a validation that must not go on."""


class QuietResponseBuilder(ResponseBuilder[ResponseEventT]):
    """Powertools' response builder, except that the request's Accept-Encoding (a case-insensitive copy of every
    header, on every answer) is only looked at when the route or the response asks for compression."""

    @staticmethod
    def _has_compression_enabled(
        route_compression: bool, response_compression: bool | None, event: ResponseEventT
    ) -> bool:
        wanted = route_compression if response_compression is None else response_compression
        return wanted and ResponseBuilder._has_compression_enabled(route_compression, response_compression, event)


def install_validation(app: APIGatewayHttpResolver, prepare_request: Callable[[], None]) -> None:
    """Give a resolver (built with enable_validation=True) the middlewares and response builder above. Powertools
    creates its two validation middlewares on the first route call unless present; the first (here a pass-through)
    runs before the route's middlewares, the last after them: it calls `prepare_request`, validates the request,
    then the response."""
    app._response_builder_class = QuietResponseBuilder
    app._request_validation_middleware = after_the_route_middlewares
    app._response_validation_middleware = ResponseValidation(
        RouteRequestValidation(),
        prepare_request,
        validation_serializer=app._serializer,
        has_response_validation_error=app._has_response_validation_error,
    )


def plan_routes(app: APIGatewayHttpResolver) -> None:
    """Work out now, for every route registered so far, what Powertools and request validation otherwise work out on
    the route's first request (call it at cold start, once the routes are registered): a fresh instance's first
    request of a route then costs what the next ones do."""
    validation: ResponseValidation = app._response_validation_middleware
    for route in app._static_routes + app._dynamic_routes:
        validation._request_validation.plan(route)


def replace_current_request(app: APIGatewayHttpResolver, event: dict[str, Any]) -> None:
    """Make `event` the request the resolver is resolving (Powertools keeps it on BaseRouter, for every router)."""
    BaseRouter.current_event = app._to_proxy_event(event)


def serve_merged_openapi(app: APIGatewayHttpResolver, document: OpenAPIMerge) -> None:
    """Make the resolver's Swagger UI render `document` (what configure_openapi_merge would set, had every route's
    code been in one package for it to discover)."""
    app._openapi_merge = document
