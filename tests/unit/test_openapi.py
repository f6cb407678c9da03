"""The published OpenAPI document (the gateway's /openapi.json and /docs) describes the whole API a client uses:
every route of template.yaml, the ingest routes exactly as the producer declares and validates them."""

import json

import pytest
from openapi_spec_validator import validate

from local.lambda_runner.template import load_template
from logpipe.edge.openapi import OPENAPI
from tests.unit.test_template_drift import TEMPLATE

UNDOCUMENTED = {("GET", "/openapi.json"), ("GET", "/docs")}  # the document and its page


@pytest.fixture(scope="module")
def published(gateway_function) -> dict:
    return json.loads(gateway_function.api_document.get_openapi_json_schema())


@pytest.fixture(scope="module")
def producers(producer_function) -> dict:
    """The producer's own document of its routes, generated from its handlers."""
    document = producer_function.app.get_openapi_schema(**OPENAPI)
    return json.loads(document.model_dump_json(by_alias=True, exclude_none=True))


def test_the_published_document_is_valid_and_lists_every_route_of_the_template(published: dict) -> None:
    validate(published)
    documented = {(method.upper(), path) for path, item in published["paths"].items() for method in item}
    functions = load_template(TEMPLATE, environ={}).functions.values()
    routes = {(route.method, route.path) for spec in functions for route in spec.http_routes}
    assert documented == routes - UNDOCUMENTED


@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/batch"])
def test_the_published_ingest_routes_are_the_producers(published: dict, producers: dict, path: str) -> None:
    """Same parameters, answers, security and body as the producer's handlers, except the batch body: the
    producer's handler reads it (JSON or NDJSON), so only the published document declares its JSON shapes."""
    ours, theirs = published["paths"][path]["post"], producers["paths"][path]["post"]
    if path == "/api/logs/batch":
        assert "requestBody" not in theirs
        body = ours.pop("requestBody")["content"]["application/json"]["schema"]
        assert body["anyOf"] == [
            {"type": "array", "items": {"$ref": "#/components/schemas/LogEventIn"}},
            {"$ref": "#/components/schemas/EventsEnvelope"},
        ]
    assert ours == theirs
    assert ours["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"202", "401", "403", "429", "503"} <= set(ours["responses"])
    for name, schema in producers["components"]["schemas"].items():
        assert published["components"]["schemas"][name] == schema, name
