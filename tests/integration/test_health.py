import json
import time


def test_health_reports_every_dependency_up(settings, gateway_function, sample_event, lambda_context) -> None:
    response = gateway_function.handler(sample_event("gateway_health"), lambda_context)

    body = json.loads(response["body"])
    assert response["statusCode"] == 200, body
    assert {name: dep["status"] for name, dep in body["dependencies"].items()} == {
        "postgresql": "up",
        "redis": "up",
        "kafka": "up",
    }


def test_health_is_503_naming_the_dependency_that_is_down(
    settings, redis_down, gateway_function, sample_event, lambda_context
) -> None:
    started = time.monotonic()
    response = gateway_function.handler(sample_event("gateway_health"), lambda_context)

    body = json.loads(response["body"])
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"]
    assert body["dependencies"]["redis"]["status"] == "down"
    assert body["dependencies"]["postgresql"]["status"] == "up"
    assert time.monotonic() - started < 5
