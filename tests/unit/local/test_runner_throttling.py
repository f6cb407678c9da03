"""Stage throttling and reserved concurrency as read from a template, and the token bucket (fake clock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from local.lambda_runner.sam_model import ACCOUNT_THROTTLE_BURST, Throttle
from local.lambda_runner.template import load_template
from local.lambda_runner.throttling import TokenBucket

pytestmark = pytest.mark.unit

WriteFiles = Callable[[dict[str, str]], Path]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  IngestRate:
    Type: Number
    Default: 1500
Globals:
  Function: {Runtime: python3.11, CodeUri: fn/}
  HttpApi:
    DefaultRouteSettings: {ThrottlingRateLimit: 7, ThrottlingBurstLimit: 3}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      DefaultRouteSettings: {ThrottlingRateLimit: 100, ThrottlingBurstLimit: 50}
      RouteSettings:
        "POST /ingest": {ThrottlingRateLimit: !Ref IngestRate}
  Open:
    Type: AWS::Serverless::HttpApi
  Ingest:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.ingest
      ReservedConcurrentExecutions: 6
      Events:
        Post: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /ingest, Method: POST}}
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /ingest, Method: GET}}
        Elsewhere: {Type: HttpApi, Properties: {ApiId: !Ref Open, Path: /open, Method: GET}}
        Implicit: {Type: HttpApi, Properties: {Path: /implicit, Method: GET}}
  Free:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.free
"""


def test_route_throttles_and_reserved_concurrency_come_from_the_template(write_files: WriteFiles) -> None:
    root = write_files({"template.yaml": TEMPLATE, "fn/app.py": ""})
    tpl = load_template(root / "template.yaml", environ={})
    routes = {route.event_id: route for route in tpl.functions["Ingest"].http_routes}
    # RouteSettings override the API's DefaultRouteSettings field by field (here: the rate only).
    assert routes["Post"].throttle == Throttle(rate_per_s=1500.0, burst=50)
    assert routes["Get"].throttle == Throttle(rate_per_s=100.0, burst=50)
    # The explicit API's own settings win over Globals.HttpApi; an API without settings merges the globals.
    assert routes["Elsewhere"].throttle == Throttle(rate_per_s=7.0, burst=3)
    # Routes without ApiId belong to the implicit API, configured by Globals.HttpApi.
    assert routes["Implicit"].api_id == "ServerlessHttpApi"
    assert routes["Implicit"].throttle == Throttle(rate_per_s=7.0, burst=3)
    assert tpl.functions["Ingest"].reserved_concurrency == 6
    assert tpl.functions["Free"].reserved_concurrency is None


def test_a_route_without_settings_is_not_throttled_and_a_missing_field_takes_the_account_limit(
    write_files: WriteFiles,
) -> None:
    template = """
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          RouteSettings:
            "GET /slow": {ThrottlingRateLimit: 2}
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Runtime: python3.11
          CodeUri: fn/
          Handler: app.handler
          Events:
            Slow: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /slow, Method: GET}}
            Fast: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /fast, Method: GET}}
    """
    root = write_files({"template.yaml": template, "fn/app.py": ""})
    routes = {r.event_id: r for r in load_template(root / "template.yaml", environ={}).functions["Fn"].http_routes}
    assert routes["Slow"].throttle == Throttle(rate_per_s=2.0, burst=ACCOUNT_THROTTLE_BURST)
    assert routes["Fast"].throttle is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take_all(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_bucket_serves_the_burst_then_refuses() -> None:
    bucket = TokenBucket(Throttle(rate_per_s=10, burst=5), clock=FakeClock())
    assert take_all(bucket, 8) == 5


def test_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Throttle(rate_per_s=8, burst=5), clock=clock)  # binary fractions: exact arithmetic
    take_all(bucket, 5)
    clock.now += 0.3125  # 2.5 tokens
    assert take_all(bucket, 10) == 2
    clock.now += 0.0625  # 0.5 + 0.5 = 1 token
    assert take_all(bucket, 10) == 1
    clock.now += 3600  # an idle hour refills to the burst, no more
    assert take_all(bucket, 100) == 5


def test_bucket_sustains_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Throttle(rate_per_s=100, burst=1), clock=clock)
    served = 0
    for _ in range(10_000):  # 10 s offered at 1,000 requests/s
        clock.now += 0.001
        served += bucket.take()
    assert 999 <= served <= 1001


def test_bucket_with_no_burst_refuses_everything() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Throttle(rate_per_s=1000, burst=0), clock=clock)
    clock.now += 10
    assert take_all(bucket, 10) == 0
