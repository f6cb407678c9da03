"""local/runner.py over HTTP with a toy template and toy handlers (not the project's functions).

Starts the runner as a subprocess on a free port, drives it with real HTTP requests, and stops it with SIGINT.
"""

from __future__ import annotations

import base64
import gzip
import json
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from local.lambda_runner.testing import RunnerProcess

pytestmark = pytest.mark.e2e

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: e2e
Globals:
  Function:
    Runtime: python3.11
    Timeout: 3
    Layers:
      - !Ref ToyLayer
    Environment:
      Variables:
        GREETING: !Sub "hello from ${Stage}"
        MARKER_DIR: /nonexistent
Resources:
  ToyLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.echo
      Events:
        Post:
          Type: HttpApi
          Properties: {Path: /echo, Method: POST}
        Item:
          Type: HttpApi
          Properties: {Path: "/items/{id}", Method: GET}
        Files:
          Type: HttpApi
          Properties: {Path: "/files/{proxy+}", Method: ANY}
  Misc:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.misc
      Timeout: 1
      Events:
        Boom:
          Type: HttpApi
          Properties: {Path: /boom, Method: GET}
        Hang:
          Type: HttpApi
          Properties: {Path: /hang, Method: GET}
        Binary:
          Type: HttpApi
          Properties: {Path: /binary, Method: GET}
        Plain:
          Type: HttpApi
          Properties: {Path: /plain, Method: GET}
        Cookies:
          Type: HttpApi
          Properties: {Path: /cookies, Method: GET}
        Malformed:
          Type: HttpApi
          Properties: {Path: /malformed, Method: GET}
        Huge:
          Type: HttpApi
          Properties: {Path: /huge, Method: GET}
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.slow
      Events:
        Sleep:
          Type: HttpApi
          Properties: {Path: /sleep, Method: GET}
  Resolver:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: resolver.handler
      Events:
        Hello:
          Type: HttpApi
          Properties: {Path: "/hello/{name}", Method: GET}
"""

APP = """
import base64, os, pathlib, time
from toylayer import SUFFIX

def echo(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-request-id": context.aws_request_id},
            "body": __import__("json").dumps(event)}

def misc(event, context):
    path = event["rawPath"]
    if path == "/boom":
        raise RuntimeError("kaboom")
    if path == "/hang":
        time.sleep(60)
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "image/png"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if path == "/plain":
        return {"answer": 42, "suffix": SUFFIX}
    if path == "/cookies":
        return {"statusCode": 201, "headers": {"x-one": "1"}, "cookies": ["a=1; Path=/", "b=2"], "body": "ok"}
    if path == "/malformed":
        return {"statusCode": "not a number"}
    if path == "/huge":  # a response over Lambda's 6 MB
        return {"statusCode": 200, "body": "x" * 7_000_000}

def slow(event, context):
    marker = (event.get("queryStringParameters") or {}).get("marker")
    if marker:  # written whole, then renamed: the test reads it as soon as it exists
        pathlib.Path(marker + ".tmp").write_text(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
    started = time.time()
    time.sleep(float(event["queryStringParameters"]["s"]))
    return {"pid": os.getpid(), "started": started, "ended": time.time()}
"""

RESOLVER = """
import os
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from toylayer import SUFFIX

logger = Logger()
app = APIGatewayHttpResolver()

@app.get("/hello/<name>")
def hello(name: str):
    return {"message": f"{os.environ['GREETING']}, {name}{SUFFIX}"}

@logger.inject_lambda_context
def handler(event, context):
    return app.resolve(event, context)
"""


def write_project(root: Path) -> Path:
    files = {
        "template.yaml": TEMPLATE,
        "fn/app.py": APP,
        "fn/resolver.py": RESOLVER,
        "layer/python/toylayer.py": "SUFFIX = '!'\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root / "template.yaml"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    template = write_project(tmp_path_factory.mktemp("toy-http"))
    proc = RunnerProcess(template, args=["--workers", "2", "--no-kafka"])
    with proc:
        yield proc
    assert proc.returncode == 0, proc.output()


def test_event_shape_and_echo(runner: RunnerProcess) -> None:
    response = requests.post(
        f"{runner.url}/echo?tag=a&tag=b&q=x%20y",
        json={"hello": "world"},
        headers={"X-Custom": "1", "Cookie": "s=abc; t=1", "User-Agent": "e2e-test"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    event = response.json()
    model = APIGatewayProxyEventV2Model.model_validate(event)
    assert model.routeKey == "POST /echo"
    assert model.rawPath == "/echo"
    assert model.rawQueryString == "tag=a&tag=b&q=x%20y"
    assert model.queryStringParameters == {"tag": "a,b", "q": "x y"}
    assert model.cookies == ["s=abc", "t=1"]
    assert model.headers["x-custom"] == "1"
    assert model.requestContext.http.userAgent == "e2e-test"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert model.requestContext.stage == "$default"
    assert model.requestContext.requestId == response.headers["apigw-requestid"]
    assert json.loads(model.body) == {"hello": "world"}
    assert model.isBase64Encoded is False
    assert response.headers["x-request-id"] != model.requestContext.requestId  # Lambda's own request id


def test_path_parameters(runner: RunnerProcess) -> None:
    item = requests.get(f"{runner.url}/items/42", timeout=10).json()
    assert (item["routeKey"], item["pathParameters"]) == ("GET /items/{id}", {"id": "42"})
    files = requests.delete(f"{runner.url}/files/a/b/c.txt", timeout=10).json()
    assert (files["routeKey"], files["pathParameters"]) == ("ANY /files/{proxy+}", {"proxy": "a/b/c.txt"})
    assert files["requestContext"]["http"]["method"] == "DELETE"


def test_gzip_body_arrives_base64_encoded(runner: RunnerProcess) -> None:
    raw = gzip.compress(b'[{"message": "compressed"}]')
    event = requests.post(
        f"{runner.url}/echo",
        data=raw,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=10,
    ).json()
    assert event["isBase64Encoded"] is True
    assert gzip.decompress(base64.b64decode(event["body"])) == b'[{"message": "compressed"}]'


def test_powertools_event_handler_with_layer_and_template_environment(runner: RunnerProcess) -> None:
    response = requests.get(f"{runner.url}/hello/bob", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"message": "hello from e2e, bob!"}


def test_response_mapping(runner: RunnerProcess) -> None:
    plain = requests.get(f"{runner.url}/plain", timeout=10)
    assert (plain.status_code, plain.headers["content-type"], plain.json()) == (
        200,
        "application/json",
        {"answer": 42, "suffix": "!"},
    )
    binary = requests.get(f"{runner.url}/binary", timeout=10)
    assert binary.headers["content-type"] == "image/png"
    assert binary.content == bytes(range(256))
    cookies = requests.get(f"{runner.url}/cookies", timeout=10)
    assert cookies.status_code == 201
    assert cookies.text == "ok"
    assert cookies.headers["x-one"] == "1"
    assert cookies.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2"]


def test_api_gateway_errors(runner: RunnerProcess) -> None:
    boom = requests.get(f"{runner.url}/boom", timeout=10)
    assert (boom.status_code, boom.json()) == (500, {"message": "Internal Server Error"})
    runner.wait_for_log("RuntimeError: kaboom")  # the traceback is logged

    malformed = requests.get(f"{runner.url}/malformed", timeout=10)
    assert (malformed.status_code, malformed.json()) == (500, {"message": "Internal Server Error"})

    started = time.monotonic()
    hang = requests.get(f"{runner.url}/hang", timeout=10)
    assert hang.status_code == 504
    assert hang.json() == {"message": "Endpoint request timed out"}
    assert time.monotonic() - started < 5
    runner.wait_for_log("Task timed out after 1.00 seconds")
    assert requests.get(f"{runner.url}/plain", timeout=10).status_code == 200  # the function still serves

    for method, path in (("GET", "/nowhere"), ("GET", "/echo"), ("POST", "/items/1")):
        missing = requests.request(method, f"{runner.url}{path}", timeout=10)
        assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})


def test_a_request_the_front_cannot_parse_gets_the_json_error_shape(runner: RunnerProcess) -> None:
    long_line = requests.get(f"{runner.url}/plain?q={'a' * 100_000}", timeout=10)
    assert (long_line.status_code, long_line.headers["content-type"]) == (400, "application/json")
    assert long_line.json() == {"message": "Bad Request"}
    assert requests.get(f"{runner.url}/plain", timeout=10).status_code == 200  # the front still serves


def test_payload_limits(runner: RunnerProcess) -> None:
    too_big = requests.post(f"{runner.url}/echo", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert (too_big.status_code, too_big.json()) == (413, {"message": "Request Entity Too Large"})
    # Within API Gateway's 10 MB but above Lambda's 6 MB invocation payload.
    too_big_for_lambda = requests.post(f"{runner.url}/echo", data=b"x" * (7 * 1024 * 1024), timeout=30)
    assert too_big_for_lambda.status_code == 413
    fine = requests.post(f"{runner.url}/echo", data=b"x" * (1024 * 1024), timeout=30)
    assert fine.status_code == 200 and len(fine.json()["body"]) == 1024 * 1024
    # A response over Lambda's 6 MB: the invocation fails (Function.ResponseSizeTooLarge), API Gateway answers 502.
    huge = requests.get(f"{runner.url}/huge", timeout=30)
    assert (huge.status_code, huge.json()) == (502, {"message": "Internal Server Error"})
    runner.wait_for_log("Response payload size (7000028 bytes) exceeded maximum allowed payload size (6291556 bytes)")


def test_concurrent_invocations_use_separate_instances(runner: RunnerProcess) -> None:
    results: list[dict] = []

    def call() -> None:
        results.append(requests.get(f"{runner.url}/sleep?s=0.5", timeout=20).json())

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = results
    assert first["pid"] != second["pid"]
    assert first["started"] < second["ended"] and second["started"] < first["ended"]


def test_sigint_finishes_in_flight_requests_and_exits_cleanly(tmp_path: Path) -> None:
    template = write_project(tmp_path)
    marker = tmp_path / "started"
    runner = RunnerProcess(template, args=["--workers", "1", "--no-kafka"]).start()
    try:
        url = runner.url
        outcome: dict = {}

        def call() -> None:
            outcome["response"] = requests.get(f"{url}/sleep", params={"s": "1.5", "marker": str(marker)}, timeout=30)

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, runner.output()
            time.sleep(0.02)
        worker_pid = int(marker.read_text())
        assert runner.stop() == 0, runner.output()
        thread.join(10)
        response = outcome["response"]
        assert response.status_code == 200
        assert response.json()["pid"] == worker_pid  # the invocation ran to its end
        assert "stopped" in runner.output()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/plain", timeout=5)
        assert not Path(f"/proc/{worker_pid}").exists()  # the worker is gone too
    finally:
        if runner.proc and runner.proc.poll() is None:
            runner.proc.kill()
