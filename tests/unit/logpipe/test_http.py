import json
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from logpipe.http import create_resolver


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
