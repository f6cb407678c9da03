"""Elasticsearch _bulk decoder: NDJSON written by hand, as stock clients send it."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from logpipe.edge.decoders import esbulk
from logpipe.edge.decoders.esbulk import BulkAction, BulkRequest
from logpipe.errors import (
    InvalidEventError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

pytestmark = pytest.mark.unit

NDJSON = "application/x-ndjson"


def ndjson(*lines: Any) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def decode(*lines: Any, default_index: str | None = "logs", max_items: int = 100) -> BulkRequest:
    return esbulk.decode(ndjson(*lines), NDJSON, max_items, 0, default_index)


def one(document: dict[str, Any], action: dict[str, Any] | None = None) -> Any:
    result = decode(action or {"create": {}}, document)
    assert len(result.items) == len(result.actions) == 1
    return result.items[0]


def test_an_ecs_document_maps_every_field() -> None:
    result = decode(
        {"create": {"_index": "web-2024", "_id": "doc-1"}},
        {
            "@timestamp": "2024-05-01T12:00:00.250Z",
            "message": "GET /orders 200",
            "log": {"level": "warning", "logger": "access"},
            "service": {"name": "web", "version": "1.2"},
            "host": {"name": "ip-10-0-0-1"},
            "http": {"response": {"status_code": 200}},
            "tags": ["a", "b"],
        },
    )
    assert result.actions == [BulkAction("create", "web-2024", "doc-1")]
    assert result.items == [
        {
            "level": "WARN",
            "message": "GET /orders 200",
            "source": "web",
            "timestamp": datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
            "attributes": {
                "log": {"logger": "access"},
                "service": {"version": "1.2"},
                "host": {"name": "ip-10-0-0-1"},
                "http": {"response": {"status_code": 200}},
                "tags": ["a", "b"],
            },
        }
    ]


def test_create_and_index_are_items_update_and_delete_are_item_errors() -> None:
    result = decode(
        {"index": {"_index": "a", "_id": "1"}},
        {"message": "indexed"},
        {"delete": {"_index": "b", "_id": "2"}},
        {"update": {"_id": "3"}},
        {"doc": {"message": "an update's document line is skipped"}},
        {"create": {}},
        {"message": "created"},
        {"delete": {"_id": "4"}},
    )
    assert result.actions == [
        BulkAction("index", "a", "1"),
        BulkAction("delete", "b", "2"),
        BulkAction("update", "logs", "3"),
        BulkAction("create", "logs", None),
        BulkAction("delete", "logs", "4"),
    ]
    indexed, deleted, updated, created, deleted_last = result.items
    assert indexed["message"] == "indexed" and created["message"] == "created"
    for error, action in ((deleted, "delete"), (updated, "update"), (deleted_last, "delete")):
        assert isinstance(error, InvalidEventError)
        assert error.details == {"action": action}


def test_the_index_comes_from_the_action_else_the_url_else_the_request_is_malformed() -> None:
    result = decode({"create": {"_index": "mine"}}, {"message": "m"}, {"create": {}}, {"message": "m"})
    assert [a.index for a in result.actions] == ["mine", "logs"]
    assert [i["source"] for i in result.items] == ["mine", "logs"]  # no service: the index names the source
    with pytest.raises(MalformedRequestError):
        decode({"create": {}}, {"message": "m"}, default_index=None)
    assert decode({"create": {"_index": "x"}}, {"message": "m"}, default_index=None).actions[0].index == "x"


def test_type_and_other_action_parameters_are_ignored_and_numeric_ids_kept_as_text() -> None:
    result = decode(
        {"index": {"_index": "x", "_type": "_doc", "_id": 42, "routing": "r", "pipeline": "p"}}, {"message": "m"}
    )
    assert result.actions == [BulkAction("index", "x", "42")]
    assert result.items[0]["attributes"] == {}


def test_an_id_over_512_bytes_is_an_item_error() -> None:
    result = decode({"create": {"_id": "é" * 256}}, {"message": "m"}, {"create": {"_id": "é" * 257}}, {"message": "m"})
    ok, too_long = result.items
    assert ok["message"] == "m"
    assert isinstance(too_long, InvalidEventError)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"message": "a", "log": "b", "msg": "c"}, "a"),
        ({"log": "b", "msg": "c"}, "b"),
        ({"msg": "c"}, "c"),
        ({"message": "", "msg": "c"}, "c"),
        ({"message": 5, "log": {"level": "info"}, "msg": "c"}, "c"),
    ],
)
def test_the_message_is_the_first_string_of_message_log_msg(document: dict[str, Any], message: str) -> None:
    assert one(document)["message"] == message


def test_unused_message_fields_stay_attributes() -> None:
    assert one({"message": "a", "msg": "c", "log": 3})["attributes"] == {"msg": "c", "log": 3}


@pytest.mark.parametrize("document", [{}, {"message": ""}, {"message": 5}, {"message": ["a"]}, {"log": {"x": 1}}])
def test_a_document_without_a_message_is_an_item_error(document: dict[str, Any]) -> None:
    error = one(document)
    assert isinstance(error, InvalidEventError)
    assert "message" in error.message


@pytest.mark.parametrize(
    ("document", "level", "attributes"),
    [
        ({"log": {"level": "ERROR"}}, "ERROR", {}),
        ({"log": {"level": "err", "file": "a"}}, "ERROR", {"log": {"file": "a"}}),
        ({"log.level": "crit"}, "FATAL", {}),
        ({"level": "Warning"}, "WARN", {}),
        ({"severity": "debug"}, "DEBUG", {}),
        (
            {"log": {"level": "trace"}, "log.level": "error", "level": "info"},
            "TRACE",
            {"log.level": "error", "level": "info"},
        ),
        ({"log.level": "error", "level": "info"}, "ERROR", {"level": "info"}),
        ({"level": "info", "severity": "error"}, "INFO", {"severity": "error"}),
        ({"level": "loud"}, "INFO", {"level": "loud"}),
        ({"level": 30}, "INFO", {"level": 30}),
        ({"log": {"level": None}}, "INFO", {"log": {"level": None}}),
        ({}, "INFO", {}),
    ],
)
def test_the_level_comes_from_log_level_level_or_severity(
    document: dict[str, Any], level: str, attributes: dict[str, Any]
) -> None:
    item = one({"message": "m", **document})
    assert (item["level"], item["attributes"]) == (level, attributes)


@pytest.mark.parametrize(
    ("document", "source", "attributes"),
    [
        (
            {"service": {"name": "nested"}, "service.name": "dotted", "source": "src"},
            "nested",
            {"service.name": "dotted", "source": "src"},
        ),
        ({"service.name": "dotted", "source": "src"}, "dotted", {"source": "src"}),
        ({"source": "src", "host": {"name": "h"}}, "src", {"host": {"name": "h"}}),
        ({"source": {"ip": "10.0.0.1"}}, "logs", {"source": {"ip": "10.0.0.1"}}),  # ECS source is an object
        ({"service": {"name": ""}, "host.name": "h"}, "logs", {"service": {"name": ""}, "host.name": "h"}),
    ],
)
def test_the_source_is_service_name_else_source_else_the_index(
    document: dict[str, Any], source: str, attributes: dict[str, Any]
) -> None:
    item = one({"message": "m", **document})
    assert (item["source"], item["attributes"]) == (source, attributes)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00.123456789+02:00", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (1714564800123, datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        (1714564800123.5, datetime(2024, 5, 1, 12, 0, 0, 123500, tzinfo=UTC)),
        ("1714564800123", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("3000-01-01T00:00:00Z", datetime(3000, 1, 1, tzinfo=UTC)),
        (32503680000000, datetime(3000, 1, 1, tzinfo=UTC)),
        (-1000, datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_timestamps_are_iso_or_epoch_millis(stamp: Any, expected: datetime) -> None:
    item = one({"message": "m", "@timestamp": stamp})
    assert item["timestamp"] == expected
    assert "@timestamp" not in item["attributes"]


@pytest.mark.parametrize(
    "stamp",
    [
        "yesterday",
        "",
        "2024-13-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        10**20,
        -(10**20),
        True,
        [1],
        {"a": 1},
        "1" * 30,
    ],
)
def test_timestamps_that_cannot_be_read_are_item_errors(stamp: Any) -> None:
    result = decode({"create": {}}, {"message": "bad", "@timestamp": stamp}, {"create": {}}, {"message": "good"})
    bad, good = result.items
    assert isinstance(bad, InvalidEventError)
    assert good["message"] == "good"


def test_a_document_without_timestamp_has_none() -> None:
    assert "timestamp" not in one({"message": "m"})


@pytest.mark.parametrize(
    "line",
    [
        *[b"not json", b"[1, 2]", b'"text"', b"", b"   ", b'{"message": "m", "x": NaN}', b"\xff\xfe"],
        b'{"message": "m", "deep": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"message": "lone surrogate \\ud800"}',
    ],
)
def test_a_document_line_that_is_not_an_object_is_an_item_error(line: bytes) -> None:
    body = b'{"create":{}}\n' + line + b'\n{"create":{}}\n{"message":"good"}\n'
    result = esbulk.decode(body, NDJSON, 10, 0, "logs")
    bad, good = result.items
    assert isinstance(bad, InvalidEventError)
    assert good["message"] == "good"
    assert len(result.actions) == 2


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"create": {}, "index": {}}',
        b'{"upsert": {}}',
        b'{"create": "x"}',
        b'{"create": {"_index": 5}}',
        b'{"create": {"_index": ""}}',
        b'{"create": {"_id": ["a"]}}',
        b'{"create": {"_id": ""}}',
        b"{" * 1000,
    ],
)
def test_a_malformed_action_line_refuses_the_request(line: bytes) -> None:
    body = b'{"create":{}}\n{"message":"fine"}\n' + line + b'\n{"message":"m"}\n'
    with pytest.raises(MalformedRequestError):
        esbulk.decode(body, NDJSON, 10, 0, "logs")


def test_a_missing_last_document_line_refuses_the_request() -> None:
    for body in (b'{"create":{}}\n', b'{"create":{}}', b'{"index":{}}\n{"message":"m"}\n{"index":{}}\n'):
        with pytest.raises(MalformedRequestError):
            esbulk.decode(body, NDJSON, 10, 0, "logs")


def test_pairing_is_positional_so_a_missing_document_in_the_middle_shifts_the_rest() -> None:
    # as in Elasticsearch: the next action line is taken as the document, and what follows is read as actions
    body = ndjson({"create": {}}, {"create": {}}, {"message": "m"})
    with pytest.raises(MalformedRequestError):  # {"message": "m"} is not an action
        esbulk.decode(body, NDJSON, 10, 0, "logs")


def test_blank_lines_between_items_and_a_missing_final_newline_are_accepted() -> None:
    body = b'\n{"create":{}}\n{"message":"a"}\n\n\r\n{"index":{}}\r\n{"message":"b"}'
    result = esbulk.decode(body, NDJSON, 10, 0, "logs")
    assert [i["message"] for i in result.items] == ["a", "b"]


def test_an_empty_body_has_no_items() -> None:
    assert esbulk.decode(b"", NDJSON, 10, 0, "logs") == BulkRequest([], [])
    assert esbulk.decode(b"\n\n", NDJSON, 10, 0, "logs") == BulkRequest([], [])


def test_repeated_action_lines_keep_their_own_ids_and_documents() -> None:
    result = decode(
        {"create": {"_id": "a"}},
        {"message": "1"},
        {"create": {"_id": "a"}},
        {"message": "2"},
        {"create": {}},
        {"message": "3"},
    )
    assert [a.id for a in result.actions] == ["a", "a", None]
    assert [i["message"] for i in result.items] == ["1", "2", "3"]
    result.items[0]["attributes"]["x"] = 1
    assert result.items[1]["attributes"] == {}


def test_more_actions_than_allowed_are_refused_before_any_document_is_read() -> None:
    body = b'{"delete":{"_id":"1"}}\n' * 100_000
    with pytest.raises(PayloadTooLargeError):
        esbulk.decode(body, NDJSON, 1000, 0, "logs")
    body = b'{"create":{}}\n{"message": "m"}\n' * 3
    assert len(esbulk.decode(body, NDJSON, 3, 0, "logs").items) == 3
    with pytest.raises(PayloadTooLargeError):
        esbulk.decode(body, NDJSON, 2, 0, "logs")


def test_documents_are_not_read_when_the_count_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("a document was mapped")

    monkeypatch.setattr(esbulk, "_item", refuse)
    with pytest.raises(PayloadTooLargeError):
        esbulk.decode(b'{"create":{}}\n{"message": "m"}\n' * 5, NDJSON, 4, 0, "logs")


@pytest.mark.parametrize("content_type", [NDJSON, "application/json", "application/x-ndjson; charset=UTF-8", ""])
def test_ndjson_and_json_media_types_are_read(content_type: str) -> None:
    assert len(esbulk.decode(b'{"create":{}}\n{"message":"m"}\n', content_type, 10, 0, "logs").items) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-protobuf", "multipart/form-data"])
def test_other_media_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        esbulk.decode(b"", content_type, 10, 0, "logs")
