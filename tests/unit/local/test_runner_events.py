"""Event shapes (API Gateway v2, MSK, self-managed Kafka) checked against Powertools, and response mapping."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, KafkaEvent
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    KafkaMskEventModel,
    KafkaSelfManagedEventModel,
)

from local.lambda_runner.events import (
    ApiInfo,
    InvalidResponse,
    build_http_event,
    build_kafka_event,
    clf_time,
    encode_body,
    kafka_record,
    map_http_response,
    parse_batch_item_failures,
)

pytestmark = pytest.mark.unit

NOW = 1583348638.390


def http_event(**overrides):
    args = {
        "method": "POST",
        "raw_path": "/api/items/42",
        "query_string": "tag=a&tag=b&q=hello%20world&empty=",
        "headers": [
            ("Host", "api.example.com:8080"),
            ("User-Agent", "pytest/1.0"),
            ("Content-Type", "application/json"),
            ("X-Multi", "one"),
            ("x-multi", "two"),
            ("Cookie", "session=abc; theme=dark"),
        ],
        "body": b'{"hello": "world"}',
        "route_key": "POST /api/items/{id}",
        "path_parameters": {"id": "42"},
        "source_ip": "10.1.2.3",
        "request_id": "JKJaXmPLvHcESHA=",
        "api": ApiInfo(api_id="abcdef1234", account_id="123456789012"),
        "now": NOW,
        "server_port": 8080,
    }
    args.update(overrides)
    return build_http_event(**args)


def test_http_event_is_a_valid_api_gateway_v2_event() -> None:
    event = http_event()
    model = APIGatewayProxyEventV2Model.model_validate(event)
    assert model.version == "2.0"
    assert model.routeKey == model.requestContext.routeKey == "POST /api/items/{id}"
    assert model.requestContext.stage == "$default"
    assert model.requestContext.http.method == "POST"
    assert model.requestContext.timeEpoch.timestamp() == pytest.approx(NOW, abs=0.001)

    data = APIGatewayProxyEventV2(event)
    assert data.raw_path == data.path == "/api/items/42"
    assert data.http_method == "POST"
    assert data.path_parameters == {"id": "42"}
    assert data.cookies == ["session=abc", "theme=dark"]
    assert data.query_string_parameters == {"tag": "a,b", "q": "hello world", "empty": ""}
    assert data.get_query_string_value("q") == "hello world"
    assert data.json_body == {"hello": "world"}
    assert data.is_base64_encoded is False
    assert data.request_context.http.source_ip == "10.1.2.3"
    assert data.request_context.http.user_agent == "pytest/1.0"
    assert data.request_context.domain_name == "api.example.com"
    assert data.request_context.domain_prefix == "api"
    assert data.request_context.request_id == "JKJaXmPLvHcESHA="
    assert data.request_context.api_id == "abcdef1234"
    assert data.request_context.account_id == "123456789012"
    assert data.request_context.time == "04/Mar/2020:19:03:58 +0000"
    assert data.headers.get("Content-Type") == "application/json"


def test_http_event_exact_keys_and_headers() -> None:
    event = http_event()
    assert list(event) == [
        "version",
        "routeKey",
        "rawPath",
        "rawQueryString",
        "cookies",
        "headers",
        "queryStringParameters",
        "requestContext",
        "pathParameters",
        "body",
        "isBase64Encoded",
    ]
    assert set(event["requestContext"]) == {
        "accountId",
        "apiId",
        "domainName",
        "domainPrefix",
        "http",
        "requestId",
        "routeKey",
        "stage",
        "time",
        "timeEpoch",
    }
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-multi"] == "one,two"  # repeated headers are comma-joined
    assert "cookie" not in headers  # cookies travel in "cookies"
    assert headers["x-forwarded-for"] == "10.1.2.3"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == "8080"
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    assert event["rawQueryString"] == "tag=a&tag=b&q=hello%20world&empty="
    assert event["requestContext"]["timeEpoch"] == 1583348638390


def test_http_event_without_body_query_params_or_cookies() -> None:
    event = http_event(method="GET", query_string="", body=b"", path_parameters=None, headers=[("host", "h")])
    APIGatewayProxyEventV2Model.model_validate(event)
    for absent in ("cookies", "queryStringParameters", "pathParameters", "body", "stageVariables"):
        assert absent not in event
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["userAgent"] == ""


def test_existing_x_forwarded_for_is_extended() -> None:
    event = http_event(headers=[("x-forwarded-for", "1.1.1.1")])
    assert event["headers"]["x-forwarded-for"] == "1.1.1.1, 10.1.2.3"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "expect_b64"),
    [
        (b'{"a": 1}', "application/json", None, False),
        (b"a=1&b=2", "application/x-www-form-urlencoded", None, False),
        (b"<x/>", "application/problem+xml", None, False),
        (b"line1\nline2", "text/plain; charset=utf-8", None, False),
        (b'{"a": 1}\n{"a": 2}\n', "application/x-ndjson", None, False),
        (b"plain text", None, None, False),
        (gzip.compress(b'{"a": 1}'), "application/json", "gzip", True),
        (b'{"a": 1}', "application/json", "identity", False),
        (b"\x89PNG\r\n\x1a\n", "image/png", None, True),
        (b"\xff\xfe\x00binary", None, None, True),
        (b"text-but-octets", "application/octet-stream", None, True),
    ],
)
def test_body_encoding(body: bytes, content_type: str | None, encoding: str | None, expect_b64: bool) -> None:
    text, is_b64 = encode_body(body, content_type, encoding)
    assert is_b64 is expect_b64
    assert (base64.b64decode(text) if is_b64 else text.encode()) == body


def test_gzip_body_round_trips_through_powertools() -> None:
    payload = [{"message": "x" * 100}] * 3
    raw = gzip.compress(json.dumps(payload).encode())
    event = http_event(
        headers=[("content-type", "application/json"), ("content-encoding", "gzip")],
        body=raw,
    )
    APIGatewayProxyEventV2Model.model_validate(event)
    data = APIGatewayProxyEventV2(event)
    assert data.is_base64_encoded is True
    assert json.loads(gzip.decompress(base64.b64decode(data.body))) == payload


def test_clf_time() -> None:
    assert clf_time(0) == "01/Jan/1970:00:00:00 +0000"


# ------------------------------------------------------------------------------------------- response mapping
def test_structured_response() -> None:
    status, headers, body = map_http_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3, "X-Flag": True},
            "multiValueHeaders": {"X-Many": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": "created",
        }
    )
    assert status == 201
    assert body == b"created"
    assert ("Content-Type", "text/plain") in headers
    assert ("X-Count", "3") in headers and ("X-Flag", "true") in headers
    assert [v for k, v in headers if k == "X-Many"] == ["a", "b"]
    assert [v for k, v in headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]
    assert not any(k.lower() == "content-type" and v == "application/json" for k, v in headers)


def test_structured_response_defaults_and_base64() -> None:
    status, headers, body = map_http_response({"statusCode": "204"})
    assert (status, body) == (204, b"")
    assert ("content-type", "application/json") in headers
    _, _, body = map_http_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert body == b"\x00\x01"


@pytest.mark.parametrize(
    ("result", "expected_body"),
    [
        ({"message": "hi"}, b'{"message":"hi"}'),  # a dict without statusCode is the body
        ("Hello from Lambda!", b"Hello from Lambda!"),  # a string is passed as is
        ([1, 2], b"[1,2]"),
        (None, b"null"),
        (7, b"7"),
    ],
)
def test_inferred_response(result, expected_body: bytes) -> None:
    status, headers, body = map_http_response(result)
    assert status == 200
    assert headers == [("content-type", "application/json")]
    assert body == expected_body


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "cookies": "a=1"},
    ],
)
def test_malformed_responses(result) -> None:
    with pytest.raises(InvalidResponse):
        map_http_response(result)


# ------------------------------------------------------------------------------------------------------ Kafka
def records():
    return [
        kafka_record(
            topic="log-events",
            partition=0,
            offset=15,
            timestamp_type=1,
            timestamp=1545084650987,
            key=b"recordKey",
            value=b'{"key":"value"}',
            headers=[("headerKey", b"headerValue")],
        ),
        kafka_record(
            topic="log-events",
            partition=0,
            offset=16,
            timestamp_type=2,
            timestamp=1545084650988,
            key=None,
            value=b"\x00\x01binary",
            headers=None,
        ),
        kafka_record(
            topic="log-events",
            partition=3,
            offset=7,
            timestamp_type=1,
            timestamp=1545084650989,
            key=b"k",
            value=b"",
            headers=[("a", b"1"), ("a", b"2"), ("empty", None)],
        ),
    ]


def test_kafka_record_shape() -> None:
    first, second, third = (json.loads(record.json) for record in records())
    assert first == {
        "topic": "log-events",
        "partition": 0,
        "offset": 15,
        "timestamp": 1545084650987,
        "timestampType": "CREATE_TIME",
        "key": "cmVjb3JkS2V5",
        "value": "eyJrZXkiOiJ2YWx1ZSJ9",
        "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
    }
    assert list(first) == ["topic", "partition", "offset", "timestamp", "timestampType", "key", "value", "headers"]
    assert "key" not in second and second["timestampType"] == "LOG_APPEND_TIME" and second["headers"] == []
    assert third["value"] == "" and third["headers"] == [{"a": [49]}, {"a": [50]}, {"empty": []}]
    assert [record.partition_key for record in records()] == ["log-events-0", "log-events-0", "log-events-3"]


def test_names_are_escaped_and_negative_timestamps_are_zero() -> None:
    record = kafka_record(
        topic='a"b\\c', partition=1, offset=2, timestamp_type=0, timestamp=-1, key=None, value=b"v",
        headers=[('h"1', b"x")],
    )  # fmt: skip
    assert json.loads(record.json) == {
        "topic": 'a"b\\c',
        "partition": 1,
        "offset": 2,
        "timestamp": 0,
        "timestampType": "CREATE_TIME",
        "value": "dg==",
        "headers": [{'h"1': [120]}],
    }
    assert record.partition_key == 'a"b\\c-1'
    event = build_kafka_event([record], event_source="aws:kafka", bootstrap_servers="b", event_source_arn="a")
    assert list(json.loads(event)["records"]) == ['a"b\\c-1']


def test_a_tombstone_has_no_value_key_and_an_empty_value_an_empty_one() -> None:
    def record(value: bytes | None) -> dict:
        return json.loads(
            kafka_record(
                topic="t", partition=0, offset=1, timestamp_type=1, timestamp=1, key=b"k", value=value, headers=None
            ).json
        )

    assert "value" not in record(None)
    assert record(b"")["value"] == ""


def test_msk_event_validates_and_decodes_with_powertools() -> None:
    arn = "arn:aws:kafka:us-east-1:123456789012:cluster/logpipe/abc-1"
    event = json.loads(
        build_kafka_event(
            records(), event_source="aws:kafka", bootstrap_servers="b1:9092,b2:9092", event_source_arn=arn
        )
    )
    assert list(event) == ["eventSource", "eventSourceArn", "bootstrapServers", "records"]
    assert list(event["records"]) == ["log-events-0", "log-events-3"]
    assert [r["offset"] for r in event["records"]["log-events-0"]] == [15, 16]

    model = KafkaMskEventModel.model_validate(event)
    assert model.eventSourceArn == arn
    assert model.bootstrapServers == ["b1:9092", "b2:9092"]
    first = model.records["log-events-0"][0]
    assert (first.key, first.value, first.headers) == (b"recordKey", '{"key":"value"}', [{"headerKey": b"headerValue"}])
    assert model.records["log-events-0"][1].key is None

    data = KafkaEvent(event)
    decoded = list(data.records)
    assert [r.offset for r in decoded] == [15, 16, 7]
    assert decoded[0].json_value == {"key": "value"}
    assert decoded[0].decoded_headers["headerKey"] == b"headerValue"
    assert decoded[1].decoded_key is None
    assert decoded[1].decoded_value == b"\x00\x01binary"


def test_self_managed_event_has_no_arn() -> None:
    event = json.loads(
        build_kafka_event(records(), event_source="SelfManagedKafka", bootstrap_servers="b1:9092", event_source_arn="x")
    )
    assert "eventSourceArn" not in event
    KafkaSelfManagedEventModel.model_validate(event)
    with pytest.raises(ValueError):
        KafkaMskEventModel.model_validate(event)


def test_powertools_partial_batch_response_is_understood() -> None:
    """A handler using Powertools' BatchProcessor(EventType.Kafka) answers in a shape the poller parses."""
    event = json.loads(
        build_kafka_event(records(), event_source="aws:kafka", bootstrap_servers="b", event_source_arn="a")
    )

    def record_handler(record):
        if record.offset in (16, 7):
            raise ValueError("bad record")

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=BatchProcessor(event_type=EventType.Kafka), context=None
    )
    failures = parse_batch_item_failures(response, set(event["records"]))
    assert sorted(failures) == [("log-events-0", 16), ("log-events-3", 7)]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, []),
        ({"ok": True}, []),
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": None}, []),
        ({"batchItemFailures": [{"itemIdentifier": {"partition": "t-0", "offset": 3}}]}, [("t-0", 3)]),
        ({"batchItemFailures": [{"itemIdentifier": {"partition": "t-9", "offset": 3}}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": {"partition": "t-0"}}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "t-0:3"}]}, None),
        ({"batchItemFailures": "t-0"}, None),
    ],
)
def test_parse_batch_item_failures(result, expected) -> None:
    assert parse_batch_item_failures(result, {"t-0", "t-1"}) == expected
