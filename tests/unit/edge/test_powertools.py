"""What logpipe relies on in Powertools' private internals (logpipe.edge.powertools): an upgrade that changes any of
it fails here first."""

import json
from typing import Annotated

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi import dependant
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from pydantic import BaseModel, Field

from logpipe.edge.openapi import ApiDocument
from logpipe.edge.powertools import (
    QuietResponseBuilder,
    ResponseValidation,
    after_the_route_middlewares,
    serve_merged_openapi,
)
from logpipe.edge.resolver import create_resolver
from logpipe.errors import AuthenticationError
from tests.conftest import load_function

pytestmark = pytest.mark.unit


class Thing(BaseModel):
    name: str = Field(min_length=1)


def post(app: APIGatewayHttpResolver, http_event, lambda_context, body: object, headers: dict | None = None) -> tuple:
    response = app.resolve(http_event(body, path="/things", headers=headers), lambda_context)
    return response["statusCode"], json.loads(response["body"] or "null")


@pytest.fixture
def app() -> APIGatewayHttpResolver:
    app = create_resolver(1024)

    def refuse_without_key(app, next_middleware):
        if "x-api-key" not in app.current_event.headers:
            raise AuthenticationError("an API key is required")
        return next_middleware(app)

    @app.post("/things", middlewares=[refuse_without_key])
    def things(thing: Annotated[Thing, Body()], tag: Annotated[str | None, Header(max_length=3)] = None):
        return {"name": thing.name, "tag": tag}

    return app


def test_the_resolver_keeps_the_middlewares_and_builder_it_is_given(app, http_event, lambda_context) -> None:
    post(app, http_event, lambda_context, {"name": "a"}, {"x-api-key": "k"})
    assert app._request_validation_middleware is after_the_route_middlewares
    assert isinstance(app._response_validation_middleware, ResponseValidation)
    assert app._response_builder_class is QuietResponseBuilder


def test_the_fast_path_validates_headers_and_body_as_powertools_does(app, http_event, lambda_context) -> None:
    assert post(app, http_event, lambda_context, {"name": "a"}, {"x-api-key": "k", "tag": "t"}) == (
        200,
        {"name": "a", "tag": "t"},
    )
    status, body = post(app, http_event, lambda_context, {"name": ""}, {"x-api-key": "k", "tag": "long"})
    assert status == 422
    assert sorted(problem["field"] for problem in body["error"]["details"]) == ["header.tag", "name"]


def test_the_validation_verdict_comes_after_the_routes_middlewares(app, http_event, lambda_context) -> None:
    status, body = post(app, http_event, lambda_context, {"name": ""})
    assert (status, body["error"]["code"]) == (401, "unauthorized")


def test_swagger_ui_renders_the_merged_document(http_event, lambda_context) -> None:
    served, other = create_resolver(1024), create_resolver(1024)

    @other.get("/elsewhere")
    def elsewhere():
        """Served by another function."""

    serve_merged_openapi(served, ApiDocument([served, other], title="t", version="1"))
    served.enable_swagger(path="/docs", title="t", version="1")
    event = {**http_event(None, path="/docs"), "body": None}
    event["requestContext"]["http"]["method"] = "GET"
    event["routeKey"] = "GET /docs"
    page = served.resolve(event, lambda_context)
    assert page["statusCode"] == 200 and "/elsewhere" in page["body"]


def test_planned_routes_work_nothing_out_on_their_first_request(
    app, http_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.plan_routes()

    def refuse(**_arguments):
        raise AssertionError("a route's parameters were worked out on its first request")

    monkeypatch.setattr(dependant, "get_dependant", refuse)  # what Powertools' Route.dependant calls, once
    assert post(app, http_event, lambda_context, {"name": "a"}, {"x-api-key": "k", "tag": "t"}) == (
        200,
        {"name": "a", "tag": "t"},
    )


@pytest.mark.parametrize("function", ["producer", "gateway"])
def test_the_api_functions_plan_every_route_at_cold_start(function: str) -> None:
    app = load_function(function).app  # a fresh instance: no request has been resolved
    routes = app._static_routes + app._dynamic_routes
    assert routes
    assert all(route._dependant is not None for route in routes)
    assert set(app._response_validation_middleware._request_validation._plans) == set(routes)
