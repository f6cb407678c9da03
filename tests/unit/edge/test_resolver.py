import base64
import gzip
import json
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from logpipe.edge.answers import json_response
from logpipe.edge.resolver import create_resolver


def test_a_route_with_query_parameters_is_validated_by_powertools_own_path(http_event, lambda_context) -> None:
    app = create_resolver(1024)

    @app.get("/items")
    def items(limit: Annotated[int, Query(le=10)] = 5):
        return {"limit": limit}

    def get(query: str) -> tuple[int, dict]:
        event = {**http_event(None, path="/items"), "rawQueryString": query, "body": None}
        event["requestContext"]["http"]["method"] = "GET"
        event["queryStringParameters"] = dict(part.split("=") for part in query.split("&") if part)
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    assert get("limit=7") == (200, {"limit": 7})
    assert get("") == (200, {"limit": 5})
    status, body = get("limit=11")
    assert (status, [problem["field"] for problem in body["error"]["details"]]) == (422, ["query.limit"])


def test_answers_are_compressed_only_when_the_route_asks_and_the_client_accepts_gzip(
    http_event, lambda_context
) -> None:
    app = create_resolver(1024)

    @app.get("/zipped", compress=True)
    def zipped():
        return json_response(200, {"answer": "yes"})

    @app.get("/plain")
    def plain():
        return json_response(200, {"answer": "yes"})

    def get(path: str, accept_encoding: str) -> dict:
        event = {**http_event(None, path=path, headers={"Accept-Encoding": accept_encoding}), "body": None}
        event["requestContext"]["http"]["method"] = "GET"
        return app.resolve(event, lambda_context)

    zipped_answer = get("/zipped", "br, gzip")
    assert zipped_answer["headers"]["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(base64.b64decode(zipped_answer["body"]))) == {"answer": "yes"}
    assert "Content-Encoding" not in get("/zipped", "identity")["headers"]
    assert json.loads(get("/plain", "gzip")["body"]) == {"answer": "yes"}
