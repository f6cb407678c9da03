import json

import pytest

from logpipe.read import health


def test_health_is_200_when_every_dependency_answers(
    gateway_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = {"postgresql": lambda: None, "redis": lambda: None, "kafka": lambda: None}
    monkeypatch.setattr(gateway_function, "cached_health", lambda settings: health.check_health(settings, probes))

    response = gateway_function.handler(sample_event("gateway_health"), lambda_context)

    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["status"] == "up"
    assert set(body["dependencies"]) == {"postgresql", "redis", "kafka"}


def test_health_is_503_with_retry_after_when_one_is_down(
    gateway_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused() -> None:
        raise ConnectionRefusedError("redis.internal.example:6379 refused")

    probes = {"postgresql": lambda: None, "redis": refused, "kafka": lambda: None}
    monkeypatch.setattr(gateway_function, "cached_health", lambda settings: health.check_health(settings, probes))

    response = gateway_function.handler(sample_event("gateway_health"), lambda_context)

    body = json.loads(response["body"])
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"]
    assert body["dependencies"]["redis"]["status"] == "down"
    assert body["dependencies"]["redis"]["error"] == "unreachable"
    assert "example" not in response["body"]
