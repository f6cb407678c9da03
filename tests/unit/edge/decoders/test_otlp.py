"""OTLP/HTTP logs decoder: requests built with opentelemetry-proto's messages, sent as protobuf and as OTLP JSON."""

import base64
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logpipe.edge.decoders import otlp
from logpipe.errors import (
    InvalidEventError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

pytestmark = pytest.mark.unit

PROTOBUF, JSON = "application/x-protobuf", "application/json"
NOW_NS = 1_700_000_000_123_456_789
NOW = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def request(
    *records: LogRecord,
    resource: list[KeyValue] | None = None,
    scope: InstrumentationScope | None = None,
) -> ExportLogsServiceRequest:
    if resource is None:
        resource = [kv("service.name", string_value="checkout")]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=resource),
                scope_logs=[ScopeLogs(scope=scope, log_records=list(records))],
            )
        ]
    )


def otlp_json(message: ExportLogsServiceRequest) -> bytes:
    """OTLP JSON as the spec writes it: protobuf's JSON mapping (lowerCamelCase, int64 as strings) with enums as
    integers and trace/span ids as hex instead of base64."""
    document = MessageToDict(message, use_integers_for_enums=True)
    for resource in document.get("resourceLogs", []):
        for scope in resource.get("scopeLogs", []):
            for record in scope.get("logRecords", []):
                for field in ("traceId", "spanId"):
                    if field in record:
                        record[field] = base64.b64decode(record[field]).hex()
    return json.dumps(document).encode()


def decode(message: ExportLogsServiceRequest, content_type: str, max_items: int = 1000) -> list[Any]:
    body = message.SerializeToString() if content_type == PROTOBUF else otlp_json(message)
    return otlp.decode(body, content_type, max_items, 1 << 20)


def one(message: ExportLogsServiceRequest, content_type: str) -> Any:
    items = decode(message, content_type)
    assert len(items) == 1
    return items[0]


@pytest.fixture(params=[PROTOBUF, JSON], ids=["protobuf", "json"])
def encoding(request: pytest.FixtureRequest) -> str:
    return request.param


def test_a_full_record_maps_every_field(encoding: str) -> None:
    record = LogRecord(
        time_unix_nano=NOW_NS,
        observed_time_unix_nano=NOW_NS + 10**9,
        severity_number=17,
        severity_text="ERROR",
        body=AnyValue(string_value="payment declined"),
        attributes=[kv("http.response.status_code", int_value=402), kv("user.id", string_value="u-1")],
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        flags=1,
    )
    message = request(
        record,
        resource=[kv("service.name", string_value="checkout"), kv("host.name", string_value="ip-10-0-0-1")],
        scope=InstrumentationScope(name="io.opentelemetry.logback", version="2.1.0"),
    )
    assert one(message, encoding) == {
        "level": "ERROR",
        "message": "payment declined",
        "source": "checkout",
        "timestamp": NOW,
        "attributes": {
            "host.name": "ip-10-0-0-1",
            "otel.scope.name": "io.opentelemetry.logback",
            "otel.scope.version": "2.1.0",
            "http.response.status_code": 402,
            "user.id": "u-1",
        },
        "traceId": "0102030405060708090a0b0c0d0e0f10",
        "spanId": "0102030405060708",
    }


def test_the_json_encoding_decodes_to_what_protobuf_does() -> None:
    message = request(
        *(
            LogRecord(
                time_unix_nano=NOW_NS + n,
                severity_number=n % 25,
                body=AnyValue(string_value=f"line {n}"),
                attributes=[kv("n", int_value=n), kv("f", double_value=n / 3), kv("b", bool_value=n % 2 == 0)],
                trace_id=bytes([n + 1]) * 16,
            )
            for n in range(30)
        ),
        scope=InstrumentationScope(name="s", attributes=[kv("scope.attr", string_value="x")]),
    )
    assert decode(message, JSON) == decode(message, PROTOBUF)


@pytest.mark.parametrize(
    ("number", "level"),
    [
        *[(1, "TRACE"), (4, "TRACE"), (5, "DEBUG"), (8, "DEBUG"), (9, "INFO"), (12, "INFO"), (13, "WARN")],
        *[(16, "WARN"), (17, "ERROR"), (20, "ERROR"), (21, "FATAL"), (24, "FATAL")],
    ],
)
def test_severity_numbers_map_by_range(encoding: str, number: int, level: str) -> None:
    item = one(request(LogRecord(severity_number=number, body=AnyValue(string_value="m"))), encoding)
    assert item["level"] == level
    assert "otel.severity_text" not in item["attributes"]


@pytest.mark.parametrize(
    ("text", "level"), [("WARNING", "WARN"), ("Err", "ERROR"), (" critical ", "FATAL"), ("notice", "INFO")]
)
def test_an_unspecified_severity_number_takes_the_level_from_a_known_text(encoding: str, text: str, level: str) -> None:
    item = one(request(LogRecord(severity_text=text, body=AnyValue(string_value="m"))), encoding)
    assert item["level"] == level
    assert item["attributes"] == {}


def test_an_unknown_severity_text_is_info_and_kept(encoding: str) -> None:
    item = one(request(LogRecord(severity_text="AUDIT", body=AnyValue(string_value="m"))), encoding)
    assert item["level"] == "INFO"
    assert item["attributes"] == {"otel.severity_text": "AUDIT"}
    assert one(request(LogRecord(body=AnyValue(string_value="m"))), encoding)["level"] == "INFO"


def test_a_severity_text_disagreeing_with_the_number_is_kept(encoding: str) -> None:
    item = one(
        request(LogRecord(severity_number=9, severity_text="Information", body=AnyValue(string_value="m"))), encoding
    )
    assert (item["level"], item["attributes"]) == ("INFO", {})
    item = one(request(LogRecord(severity_number=13, severity_text="ERROR", body=AnyValue(string_value="m"))), encoding)
    assert (item["level"], item["attributes"]) == ("WARN", {"otel.severity_text": "ERROR"})


@pytest.mark.parametrize("number", [25, 255, -1])
def test_a_severity_number_outside_the_enum_is_an_item_error_alone(encoding: str, number: int) -> None:
    message = request(
        LogRecord(severity_number=number, body=AnyValue(string_value="bad")),
        LogRecord(severity_number=9, body=AnyValue(string_value="good")),
    )
    bad, good = decode(message, encoding)
    assert isinstance(bad, InvalidEventError)
    assert "severity_number" in bad.message
    assert good["message"] == "good"


def test_json_takes_severity_enum_names_and_refuses_unknown_ones() -> None:
    def severity(value: Any) -> Any:
        body = {
            "resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": value, "body": {"stringValue": "m"}}]}]}]
        }
        return otlp.decode(json.dumps(body).encode(), JSON, 10, 0)[0]

    assert severity("SEVERITY_NUMBER_WARN2")["level"] == "WARN"
    assert isinstance(severity("LOUD"), InvalidEventError)
    assert isinstance(severity(True), InvalidEventError)
    assert isinstance(severity(9.5), InvalidEventError)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (AnyValue(int_value=-42), "-42"),
        (AnyValue(double_value=1.5), "1.5"),
        (AnyValue(double_value=math.nan), "NaN"),
        (AnyValue(double_value=-math.inf), "-Infinity"),
        (AnyValue(bool_value=False), "false"),
        (AnyValue(bytes_value=b"\x00\xff"), "AP8="),
        (AnyValue(string_value="héllo"), "héllo"),
        (
            AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="é"), AnyValue()])),
            '[1,"é",null]',
        ),
        (
            AnyValue(
                kvlist_value=KeyValueList(
                    values=[
                        kv("a", int_value=1),
                        kv("nested", kvlist_value=KeyValueList(values=[kv("b", bool_value=True)])),
                    ]
                )
            ),
            '{"a":1,"nested":{"b":true}}',
        ),
    ],
    ids=["int", "double", "nan", "-inf", "bool", "bytes", "string", "array", "kvlist"],
)
def test_a_body_of_any_kind_becomes_the_message(encoding: str, body: AnyValue, message: str) -> None:
    assert one(request(LogRecord(body=body)), encoding)["message"] == message


@pytest.mark.parametrize("body", [None, AnyValue(), AnyValue(string_value="")], ids=["absent", "empty", "empty-string"])
def test_a_record_without_body_is_an_item_error(encoding: str, body: AnyValue | None) -> None:
    error = one(request(LogRecord(body=body, severity_number=9)), encoding)
    assert isinstance(error, InvalidEventError)
    assert "no body" in error.message


def test_attribute_values_become_json_values(encoding: str) -> None:
    record = LogRecord(
        body=AnyValue(string_value="m"),
        attributes=[
            kv("s", string_value=""),
            kv("i", int_value=2**63 - 1),
            kv("d", double_value=0.25),
            kv("inf", double_value=math.inf),
            kv("b", bool_value=True),
            kv("raw", bytes_value=b"\x01\x02"),
            kv("list", array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(bool_value=False)])),
            kv("map", kvlist_value=KeyValueList(values=[kv("k", string_value="v")])),
            kv("empty"),
        ],
    )
    assert one(request(record), encoding)["attributes"] == {
        "s": "",
        "i": 2**63 - 1,
        "d": 0.25,
        "inf": "Infinity",
        "b": True,
        "raw": "AQI=",
        "list": [1, False],
        "map": {"k": "v"},
        "empty": None,
    }


def test_attributes_collide_record_over_scope_over_resource(encoding: str) -> None:
    message = request(
        LogRecord(
            body=AnyValue(string_value="m"),
            event_name="login",
            attributes=[kv("shared", string_value="record"), kv("otel.scope.name", string_value="record")],
        ),
        resource=[
            kv("service.name", string_value="svc"),
            kv("shared", string_value="resource"),
            kv("from.resource", string_value="r"),
            kv("resource.and.scope", string_value="resource"),
            kv("event.name", string_value="resource"),
        ],
        scope=InstrumentationScope(
            name="lib",
            version="1",
            attributes=[
                kv("shared", string_value="scope"),
                kv("resource.and.scope", string_value="scope"),
                kv("otel.scope.version", string_value="scope attribute"),
            ],
        ),
    )
    assert one(message, encoding)["attributes"] == {
        "shared": "record",
        "from.resource": "r",
        "resource.and.scope": "scope",
        "otel.scope.name": "record",
        "otel.scope.version": "1",
        "event.name": "login",
    }


def test_service_name_is_the_source_else_unknown_service(encoding: str) -> None:
    record = LogRecord(body=AnyValue(string_value="m"))
    item = one(request(record, resource=[kv("service.name", string_value="api"), kv("k", int_value=1)]), encoding)
    assert (item["source"], item["attributes"]) == ("api", {"k": 1})
    assert one(request(record, resource=[]), encoding)["source"] == "unknown_service"
    assert one(request(record, resource=[kv("service.name", string_value="")]), encoding)["source"] == "unknown_service"
    assert one(request(record, resource=[kv("service.name", int_value=7)]), encoding)["source"] == "7"
    # a record attribute named service.name is an attribute, not the source
    record = LogRecord(body=AnyValue(string_value="m"), attributes=[kv("service.name", string_value="rec")])
    item = one(request(record, resource=[]), encoding)
    assert (item["source"], item["attributes"]) == ("unknown_service", {"service.name": "rec"})


def test_each_resource_and_scope_keeps_its_own_attributes(encoding: str) -> None:
    message = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=[kv("service.name", string_value=f"svc{r}")]),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name=f"scope{r}{s}"),
                        log_records=[LogRecord(body=AnyValue(string_value=f"{r}{s}{n}")) for n in range(2)],
                    )
                    for s in range(2)
                ],
            )
            for r in range(2)
        ]
    )
    items = decode(message, encoding)
    assert [(i["message"], i["source"], i["attributes"]["otel.scope.name"]) for i in items] == [
        (f"{r}{s}{n}", f"svc{r}", f"scope{r}{s}") for r in range(2) for s in range(2) for n in range(2)
    ]
    items[0]["attributes"]["mutated"] = True
    assert "mutated" not in items[1]["attributes"]  # no two items share an attributes dict


def test_time_falls_back_to_observed_time_and_else_is_left_out(encoding: str) -> None:
    body = AnyValue(string_value="m")
    assert (
        one(request(LogRecord(body=body, time_unix_nano=NOW_NS, observed_time_unix_nano=5)), encoding)["timestamp"]
        == NOW
    )
    assert one(request(LogRecord(body=body, observed_time_unix_nano=NOW_NS)), encoding)["timestamp"] == NOW
    assert "timestamp" not in one(request(LogRecord(body=body)), encoding)  # 0 means unset in OTLP


def test_the_largest_protobuf_timestamp_is_a_datetime() -> None:
    item = one(request(LogRecord(body=AnyValue(string_value="m"), time_unix_nano=2**64 - 1)), PROTOBUF)
    assert item["timestamp"] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=(2**64 - 1) // 1000)
    assert item["timestamp"].year == 2554


def json_record(**fields: Any) -> bytes:
    record = {"body": {"stringValue": "m"}, **fields}
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("32503680000000000000", datetime(3000, 1, 1, tzinfo=UTC)),
        (32503680000000000000, datetime(3000, 1, 1, tzinfo=UTC)),
        ("1", datetime(1970, 1, 1, tzinfo=UTC)),
        ("253402300800000000000", InvalidEventError),  # year 10000
        ("9" * 5000, InvalidEventError),
        ("-5", InvalidEventError),
        ("soon", InvalidEventError),
        (True, InvalidEventError),
        ([1], InvalidEventError),
    ],
)
def test_json_timestamps_beyond_protobuf_become_datetimes_or_item_errors(value: Any, expected: Any) -> None:
    (item,) = otlp.decode(json_record(timeUnixNano=value), JSON, 10, 0)
    if expected is InvalidEventError:
        assert isinstance(item, InvalidEventError)
    else:
        assert item["timestamp"] == expected


def test_zero_and_missing_ids_are_left_out(encoding: str) -> None:
    item = one(request(LogRecord(body=AnyValue(string_value="m"), trace_id=bytes(16), span_id=bytes(8))), encoding)
    assert "traceId" not in item and "spanId" not in item


@pytest.mark.parametrize(
    "fields",
    [
        {"traceId": "not hex at all, not hex at all!!"},
        {"traceId": "AQIDBAUGBwgJCgsMDQ4PEA=="},  # base64, as protobuf's own JSON mapping would write it
        {"traceId": "0102"},
        {"spanId": "01020304050607080910"},
        {"spanId": 12},
    ],
)
def test_json_ids_that_are_not_hex_of_the_right_size_are_item_errors(fields: dict[str, Any]) -> None:
    (item,) = otlp.decode(json_record(**fields), JSON, 10, 0)
    assert isinstance(item, InvalidEventError)


def test_json_ids_are_lowercased() -> None:
    (item,) = otlp.decode(json_record(traceId="ABCDEF" + "0" * 26, spanId="00000000000000FF"), JSON, 10, 0)
    assert (item["traceId"], item["spanId"]) == ("abcdef" + "0" * 26, "00000000000000ff")


@pytest.mark.parametrize(
    "record",
    [
        "a record",
        {"body": {"stringValue": 5}},
        {"body": "text"},
        {"body": {"intValue": "twelve"}},
        {"body": {"boolValue": "yes"}},
        {"body": {"stringValue": "m"}, "attributes": {"k": "v"}},
        {"body": {"stringValue": "m"}, "attributes": [{"key": 1, "value": {"stringValue": "v"}}]},
        {"body": {"stringValue": "m"}, "attributes": [{"value": {"stringValue": "v"}}]},
        {"body": {"stringValue": "m"}, "attributes": [{"key": "k", "value": "v"}]},
        {"body": {"stringValue": "m"}, "attributes": [{"key": "k", "value": {"arrayValue": {"values": 3}}}]},
        {"body": {"stringValue": "m"}, "severityText": 3},
    ],
)
def test_json_records_of_the_wrong_types_are_item_errors_alone(record: Any) -> None:
    good = {"body": {"stringValue": "fine"}}
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record, good]}]}]}).encode()
    bad, fine = otlp.decode(body, JSON, 10, 0)
    assert isinstance(bad, InvalidEventError)
    assert fine["message"] == "fine"


def test_json_integers_may_be_numbers_or_strings_and_unknown_fields_are_ignored() -> None:
    body = json_record(
        attributes=[{"key": "a", "value": {"intValue": 7}}, {"key": "b", "value": {"intValue": "-8"}}],
        someFutureField={"x": 1},
    )
    (item,) = otlp.decode(body, JSON, 10, 0)
    assert item["attributes"] == {"a": 7, "b": -8}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"resourceLogs": "x"}',
        b'{"resourceLogs": [1]}',
        b'{"resourceLogs": [{"scopeLogs": {"logRecords": []}}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": {}}]}]}',
        b'{"resourceLogs": [{"resource": {"attributes": "x"}, "scopeLogs": []}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"scope": {"name": 5}, "logRecords": []}]}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"scope": "s", "logRecords": []}]}]}',
        b'{"resourceLogs": [], "x": NaN}',
        b"\xff\xfe{}",
        b"[" * 10_000,
    ],
)
def test_json_bodies_that_are_not_an_export_request_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        otlp.decode(body, JSON, 10, 0)


def test_an_empty_json_request_has_no_items() -> None:
    assert otlp.decode(b"{}", JSON, 10, 0) == []
    assert otlp.decode(b'{"resourceLogs": []}', JSON, 10, 0) == []


def test_protobuf_that_cannot_be_read_is_malformed() -> None:
    good = request(LogRecord(body=AnyValue(string_value="hello"), attributes=[kv("k", string_value="v")]))
    data = good.SerializeToString()
    for body in (data[:-3], data[: len(data) // 2], b"\xff" * 40, b"\x0a\xff\xff\xff\xff\x0f", b"{}"):
        with pytest.raises(MalformedRequestError):
            otlp.decode(body, PROTOBUF, 10, 0)


def test_protobuf_with_invalid_utf8_in_a_string_is_malformed() -> None:
    data = request(LogRecord(body=AnyValue(string_value="hellö"))).SerializeToString()
    broken = data.replace("ö".encode(), b"\xff\xfe")
    assert broken != data
    with pytest.raises(MalformedRequestError):
        otlp.decode(broken, PROTOBUF, 10, 0)


def test_an_empty_protobuf_request_has_no_items() -> None:
    assert otlp.decode(b"", PROTOBUF, 10, 0) == []


def test_more_records_than_allowed_is_refused_before_mapping(encoding: str) -> None:
    # 100,000 empty records: each would be an item error if it were mapped
    records = b"\x12\x00" * 100_000  # ScopeLogs.log_records (field 2): empty LogRecords
    scope_logs = b"\x12" + _varint(len(records)) + records  # ResourceLogs.scope_logs (field 2)
    data = b"\x0a" + _varint(len(scope_logs)) + scope_logs  # ExportLogsServiceRequest.resource_logs (field 1)
    if encoding == JSON:
        data = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{}] * 100_000}]}]}).encode()
    with pytest.raises(PayloadTooLargeError) as refused:
        otlp.decode(data, encoding, 1000, 1 << 30)
    assert "100000" in refused.value.message
    assert len(otlp.decode(data, encoding, 100_000, 1 << 30)) == 100_000


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def test_the_record_count_limit_is_inclusive(encoding: str) -> None:
    message = request(*(LogRecord(body=AnyValue(string_value=str(n))) for n in range(3)))
    assert len(decode(message, encoding, max_items=3)) == 3
    with pytest.raises(PayloadTooLargeError):
        decode(message, encoding, max_items=2)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-ndjson", "application/grpc", "protobuf"])
def test_other_media_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        otlp.decode(b"{}", content_type, 10, 0)


def test_media_type_parameters_and_case_are_ignored() -> None:
    assert otlp.decode(b"{}", "Application/JSON; charset=utf-8", 10, 0) == []
    assert otlp.decode(b"", "application/x-protobuf; proto=opentelemetry.proto", 10, 0) == []


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


@pytest.mark.parametrize("depth", [10, 200])
def test_deeply_nested_values_decode_or_are_malformed_never_crash(encoding: str, depth: int) -> None:
    if encoding == PROTOBUF:  # written by hand: the message classes refuse to build what is too deep
        value = _field(1, b"leaf")  # AnyValue.string_value
        for _ in range(depth):
            value = _field(5, _field(1, value))  # AnyValue.array_value { values: value }
        record = _field(5, _field(1, b"m")) + _field(6, _field(1, b"deep") + _field(2, value))
        body = _field(1, _field(2, _field(2, record)))
    else:
        value = {"stringValue": "leaf"}
        for _ in range(depth):
            value = {"arrayValue": {"values": [value]}}
        record = {"body": {"stringValue": "m"}, "attributes": [{"key": "deep", "value": value}]}
        body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()
    if depth > 60:  # past the parsers' nesting limits (upb: 100 messages, pydantic-core: 200 JSON levels)
        with pytest.raises(MalformedRequestError):
            otlp.decode(body, encoding, 10, 0)
        return
    (item,) = otlp.decode(body, encoding, 10, 0)
    nested = item["attributes"]["deep"]
    for _ in range(depth):
        (nested,) = nested
    assert nested == "leaf"
