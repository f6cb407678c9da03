"""Rate limits against the real Redis: headers, 429 and reset, batch cost, failed authentications, Redis down."""

import json
import time
import uuid

import pytest

from logpipe.access import auth, ratelimit
from logpipe.adapters import cache
from logpipe.config import get_settings
from logpipe.errors import RateLimitedError
from tests.integration.gateway_helpers import answer


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, organization_id: str):
    """Settings for this test: the test's organization gets a small bucket (a per-organization override)."""

    def configure(rate: float = 1.0, burst: int = 2, **env: str) -> None:
        monkeypatch.setenv("RATE_LIMIT_OVERRIDES", json.dumps({organization_id: {"rate": rate, "burst": burst}}))
        for name, value in env.items():
            monkeypatch.setenv(name.upper(), value)
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def search(api_request, gateway_function, lambda_context, auth_headers, organization_id: str):
    headers = auth_headers(organization_id, "read")

    def get(source_ip: str = "198.51.100.7") -> tuple[int, dict, dict]:
        return answer(
            gateway_function, api_request("GET", "/api/logs", headers=headers, source_ip=source_ip), lambda_context
        )

    return get


def test_every_answer_carries_the_ratelimit_fields_and_the_429_says_when_to_retry(limits, search) -> None:
    limits(rate=2, burst=2)
    first, second, refused = search(), search(), search()

    assert [answer[0] for answer in (first, second, refused)] == [200, 200, 429]
    assert first[1]["RateLimit-Policy"] == '"org";q=2;w=1'
    assert first[1]["RateLimit"].startswith('"org";r=1;')
    assert second[1]["RateLimit"].startswith('"org";r=0;')
    _, headers, body = refused
    assert body["error"]["code"] == "rate_limited"
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit"] == '"org";r=0;t=1'
    assert headers["RateLimit-Policy"] == '"org";q=2;w=1'

    time.sleep(int(headers["Retry-After"]))
    assert search()[0] == 200, "the bucket refills: the retry after Retry-After seconds is admitted"


def test_a_batch_costs_one_token_per_event_and_may_leave_the_bucket_in_debt(limits, organization_id: str) -> None:
    limits(rate=1, burst=5)
    settings = get_settings()

    assert ratelimit.take_organization_tokens(organization_id, 3, settings).remaining == 2
    assert ratelimit.take_organization_tokens(organization_id, 2, settings).remaining == 0
    with pytest.raises(RateLimitedError) as refused:
        ratelimit.take_organization_tokens(organization_id, 1, settings)
    assert refused.value.retry_after_seconds == 1


def test_a_batch_larger_than_the_bucket_is_admitted_when_it_is_full_and_then_owed(limits, organization_id: str) -> None:
    limits(rate=1, burst=5)
    settings = get_settings()

    assert ratelimit.take_organization_tokens(organization_id, 8, settings).admitted
    with pytest.raises(RateLimitedError) as refused:
        ratelimit.take_organization_tokens(organization_id, 1, settings)
    assert refused.value.retry_after_seconds == 4  # 3 owed + 1 needed, at 1 per second


def test_organizations_have_separate_buckets(
    limits, search, auth_headers, api_request, gateway_function, lambda_context
) -> None:
    limits(rate=1, burst=1)
    assert [search()[0], search()[0]] == [200, 429]

    other = auth_headers(f"other-{uuid.uuid4().hex[:8]}", "read")
    assert answer(gateway_function, api_request("GET", "/api/logs", headers=other), lambda_context)[0] == 200


def test_failed_authentications_are_limited_per_client_address(
    limits, search, api_request, gateway_function, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits(auth_failures_burst="2", auth_failures_per_minute="6")
    monkeypatch.setattr(auth, "_blocked_addresses", {})
    address = f"203.0.113.{uuid.uuid4().int % 250}"

    def guess() -> tuple[int, dict, dict]:
        wrong = {"X-Api-Key": "lp_" + uuid.uuid4().hex}
        return answer(
            gateway_function, api_request("GET", "/api/logs", headers=wrong, source_ip=address), lambda_context
        )

    assert [guess()[0], guess()[0]] == [401, 401]
    status, headers, body = guess()
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert headers["RateLimit-Policy"] == '"auth-failures";q=2;w=20'
    assert int(headers["Retry-After"]) >= 1
    assert guess()[0] == 429, "this instance refuses the address's failures outright while it is blocked"
    assert search(source_ip=address)[0] == 200, "a valid key from the blocked address is accepted"
    assert search(source_ip="198.51.100.99")[0] == 200, "other addresses are not affected"


def test_with_redis_down_limits_fail_open_for_the_allowance_then_closed(
    limits, search, redis_down, monkeypatch: pytest.MonkeyPatch, organization_id: str
) -> None:
    """Key lookups fall back to PostgreSQL; the rate limit admits everything for the allowance, then answers 503."""
    monkeypatch.setattr(ratelimit, "_outage", ratelimit._RedisOutage())
    limits(rate=1, burst=1, rate_limit_fail_open_seconds="0.5")
    key_cached = search()  # Redis is down already: the first failure starts the allowance
    assert key_cached[0] == 200
    assert "RateLimit" not in key_cached[1], "no quota to report while failing open"
    assert search()[0] == 200, "over the bucket, but failing open"

    time.sleep(0.6)
    status, headers, body = search()
    assert (status, body["error"]["code"]) == (503, "service_unavailable")
    assert headers["Retry-After"]
    assert "127.0.0.1" not in json.dumps(body)


def test_a_lease_serves_takes_locally_without_ever_exceeding_the_bucket(
    limits, organization_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "_leases", {})
    limits(rate=0.001, burst=302)  # burst // 100 = 3 spare tokens per lease; no refill to speak of
    settings = get_settings()
    bucket = f"ratelimit:org:{organization_id}"

    def tokens_in_redis() -> float:
        return float(cache.client().hget(bucket, "tokens"))

    first = ratelimit.take_organization_tokens(organization_id, 1, settings)
    assert (first.remaining, tokens_in_redis()) == (301, pytest.approx(298, abs=0.01))
    for expected in (300, 299, 298):  # the three leased tokens: Redis is not asked
        assert ratelimit.take_organization_tokens(organization_id, 1, settings).remaining == expected
        assert tokens_in_redis() == pytest.approx(298, abs=0.01)
    ratelimit.take_organization_tokens(organization_id, 1, settings)
    assert tokens_in_redis() == pytest.approx(294, abs=0.01), "an empty lease goes back to Redis for a new one"

    admitted = 5
    with pytest.raises(RateLimitedError):
        while True:
            ratelimit.take_organization_tokens(organization_id, 1, settings)
            admitted += 1
    assert admitted == 302, "leases never admit more than the bucket holds (302 is no multiple of 1 + 3)"


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/logs/batch", "application/json", json.dumps([{"level": "INFO", "message": "m" * 300, "source": "s"}])),
        (
            "/loki/api/v1/push",
            "application/json",
            json.dumps({"streams": [{"stream": {"job": "j" * 300}, "values": []}]}),
        ),
        ("/_bulk", "application/x-ndjson", '{"create":{"_index":"i"}}\n{"message":"' + "m" * 300 + '"}\n'),
    ],
)
def test_ingest_is_limited_in_bytes_of_the_body_before_anything_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
    organization_id: str,
    producer_function,
    http_event,
    lambda_context,
    auth_headers,
    path: str,
    content_type: str,
    body: str,
) -> None:
    monkeypatch.setenv("INGEST_RATE_OVERRIDES", json.dumps({organization_id: {"rate": 1, "burst": 400}}))
    get_settings.cache_clear()
    try:
        headers = {**auth_headers(organization_id, "ingest"), "content-type": content_type}
        first = producer_function.handler(http_event(body, path, headers), lambda_context)
        refused = producer_function.handler(http_event(body, path, headers), lambda_context)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert first["statusCode"] in (200, 202, 204, 400), first["body"]  # admitted: the bucket was full
    assert refused["statusCode"] == 429
    assert int(refused["headers"]["Retry-After"]) >= 1
    assert refused["headers"]["RateLimit-Policy"].startswith('"ingest-bytes";q=400;')
