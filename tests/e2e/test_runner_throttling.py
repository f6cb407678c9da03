"""Overload over HTTP: stage throttling answers 429 like API Gateway, reserved concurrency throttles like Lambda.

A toy template read by local/runner.py as a subprocess; the limits come from the template only.
"""

from __future__ import annotations

import math
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from local.lambda_runner.testing import RunnerProcess

pytestmark = pytest.mark.e2e

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: python3.11, CodeUri: fn/, Timeout: 10}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      DefaultRouteSettings: {ThrottlingRateLimit: 1, ThrottlingBurstLimit: 3}
      RouteSettings:
        "GET /slow": {ThrottlingRateLimit: 1000, ThrottlingBurstLimit: 1000}
  Fast:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.fast
      Events:
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /fast, Method: GET}}
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.slow
      ReservedConcurrentExecutions: 1
      Events:
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /slow, Method: GET}}
"""

APP = """
import pathlib, time

def fast(event, context):
    return {"ok": True}

def slow(event, context):
    marker = (event.get("queryStringParameters") or {}).get("marker")
    if marker:
        pathlib.Path(marker).write_text("running")
        time.sleep(2)
    return {"ok": True}
"""


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("toy-throttle")
    (root / "fn").mkdir()
    (root / "template.yaml").write_text(textwrap.dedent(TEMPLATE).lstrip())
    (root / "fn" / "app.py").write_text(textwrap.dedent(APP).lstrip())
    proc = RunnerProcess(root / "template.yaml", args=["--no-kafka", "--instance-wait-ms", "20"])
    with proc:
        yield proc
    assert proc.returncode == 0, proc.output()


def test_past_the_stage_throttle_answers_429_then_serves_again(runner: RunnerProcess) -> None:
    with requests.Session() as session:
        started = time.monotonic()
        answers = [session.get(f"{runner.url}/fast", timeout=10) for _ in range(10)]
        elapsed = time.monotonic() - started
        codes = [answer.status_code for answer in answers]
        assert codes[:3] == [200, 200, 200]  # the burst
        refused = [answer for answer in answers if answer.status_code == 429]
        # The rest is refused, except what the bucket refilled at 1 request/s meanwhile.
        assert codes.count(200) <= 3 + math.ceil(elapsed)
        assert len(refused) == 10 - codes.count(200)
        assert refused[0].json() == {"message": "Too Many Requests"}
        assert refused[0].headers["content-type"] == "application/json"
        assert refused[0].headers["apigw-requestid"]

        time.sleep(1.2)  # the bucket refills one token per second
        assert session.get(f"{runner.url}/fast", timeout=10).status_code == 200


def test_beyond_reserved_concurrency_an_invocation_is_refused_fast(runner: RunnerProcess, tmp_path: Path) -> None:
    assert requests.get(f"{runner.url}/slow", timeout=10).status_code == 200  # the one instance is warm
    marker = tmp_path / "running"
    outcome: dict[str, requests.Response] = {}
    busy = threading.Thread(
        target=lambda: outcome.update(first=requests.get(f"{runner.url}/slow?marker={marker}", timeout=30))
    )
    busy.start()
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, runner.output()
        time.sleep(0.02)

    refused = requests.get(f"{runner.url}/slow", timeout=10)
    assert busy.is_alive()  # answered while the only instance is still busy: not queued behind it
    # What an HTTP API answers when Lambda throttles its integration.
    assert (refused.status_code, refused.json()) == (500, {"message": "Internal Server Error"})
    runner.wait_for_log("TooManyRequestsException: Rate Exceeded.")

    busy.join(30)
    assert outcome["first"].status_code == 200
    assert requests.get(f"{runner.url}/slow", timeout=10).status_code == 200  # load gone: served normally


PROVISIONED_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Warm:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      CodeUri: fn/
      Handler: warm.handler
      Timeout: 10
      ReservedConcurrentExecutions: 4
      AutoPublishAlias: live
      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 3}
      Events:
        Get: {Type: HttpApi, Properties: {Path: /warm, Method: GET}}
"""

WARM_APP = """
import os, time

time.sleep(3)  # a slow init: imports, clients
INITIALIZED_AT = time.time()

def handler(event, context):
    time.sleep(1)
    return {"pid": os.getpid(), "initialized_at": INITIALIZED_AT}
"""


def test_provisioned_instances_are_initialized_before_the_first_request(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "template.yaml").write_text(textwrap.dedent(PROVISIONED_TEMPLATE).lstrip())
    (tmp_path / "fn" / "warm.py").write_text(textwrap.dedent(WARM_APP).lstrip())
    with RunnerProcess(tmp_path / "template.yaml", args=["--no-kafka", "--prewarm", "0"]) as runner:
        serving = time.time()
        answers: list[tuple[float, requests.Response]] = []

        def call() -> None:
            started = time.monotonic()
            response = requests.get(f"{runner.url}/warm", timeout=30)
            answers.append((time.monotonic() - started, response))

        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [response.status_code for _, response in answers] == [200, 200, 200]
        bodies = [response.json() for _, response in answers]
        assert len({body["pid"] for body in bodies}) == 3  # three instances at once, none cold-started for them
        assert all(body["initialized_at"] < serving for body in bodies)  # initialized before the runner served
        assert max(elapsed for elapsed, _ in answers) < 2.5  # no request waited for an init (3 s, then 1 s)
    assert runner.returncode == 0, runner.output()
