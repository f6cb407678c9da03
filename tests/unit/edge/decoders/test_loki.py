"""Loki push decoder: snappy-compressed logproto.PushRequest built with the decoder's own message classes and
cramjam, and the JSON push body."""

import json
from datetime import UTC, datetime
from typing import Any

import cramjam
import pytest

from logpipe.edge.decoders import loki
from logpipe.errors import (
    InvalidEventError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

pytestmark = pytest.mark.unit

PROTOBUF, JSON = "application/x-protobuf", "application/json"
MIB = 1 << 20
NOW = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
NOW_NS = 1_700_000_000_123_456_789


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def push(*streams: tuple[str, list[tuple[int, str, dict[str, str]]]]) -> bytes:
    """A snappy PushRequest from (labels string, [(unix ns, line, structured metadata)])."""
    request = loki.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for nanos, line, metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(nanos, 10**9)
            for name, value in metadata.items():
                entry.structuredMetadata.add(name=name, value=value)
    return snappy(request.SerializeToString())


def push_json(*streams: tuple[dict[str, str], list[tuple[int, str, dict[str, str]]]]) -> bytes:
    return json.dumps(
        {
            "streams": [
                {
                    "stream": labels,
                    "values": [
                        [str(nanos), line, metadata] if metadata else [str(nanos), line]
                        for nanos, line, metadata in entries
                    ],
                }
                for labels, entries in streams
            ]
        }
    ).encode()


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{name}={json.dumps(value)}" for name, value in labels.items()) + "}"


def decode_both(labels: dict[str, str], entries: list[tuple[int, str, dict[str, str]]]) -> list[Any]:
    """Decode the same push as protobuf and as JSON; both must agree."""
    from_protobuf = loki.decode(push((labels_text(labels), entries)), PROTOBUF, 1000, MIB)
    from_json = loki.decode(push_json((labels, entries)), JSON, 1000, MIB)
    assert from_protobuf == from_json
    return from_protobuf


def test_an_entry_maps_line_time_labels_and_metadata() -> None:
    (item,) = decode_both(
        {"job": "varlogs", "level": "warn", "env": "prod", "filename": "/var/log/app.log"},
        [(NOW_NS, "disk almost full", {"trace_id": "abc", "user": "u1"})],
    )
    assert item == {
        "level": "WARN",
        "message": "disk almost full",
        "source": "varlogs",
        "timestamp": NOW,
        "attributes": {"env": "prod", "filename": "/var/log/app.log", "trace_id": "abc", "user": "u1"},
    }


@pytest.mark.parametrize(
    ("labels", "source"),
    [
        ({"service_name": "a", "service": "b", "job": "c", "app": "d", "namespace": "e"}, "a"),
        ({"service": "b", "job": "c", "app": "d"}, "b"),
        ({"job": "c", "app": "d"}, "c"),
        ({"app": "d", "application": "e", "container": "f"}, "d"),
        ({"application": "e", "container": "f"}, "e"),
        ({"container": "f", "namespace": "g"}, "f"),
        ({"namespace": "g", "pod": "p"}, "g"),
        ({"pod": "p"}, "unknown"),
        ({}, "unknown"),
        ({"service_name": "", "job": "c"}, "c"),
    ],
)
def test_the_source_is_the_first_label_of_the_list(labels: dict[str, str], source: str) -> None:
    (item,) = decode_both(labels, [(NOW_NS, "line", {})])
    assert item["source"] == source
    # the label that gave the source is not repeated; the others are attributes
    expected = {name: value for name, value in labels.items() if not (value == source and name != "pod")}
    assert item["attributes"] == expected


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("trace", "TRACE"),
        ("DEBUG", "DEBUG"),
        ("info", "INFO"),
        ("notice", "INFO"),
        ("Warning", "WARN"),
        ("warn", "WARN"),
        ("err", "ERROR"),
        ("ERROR", "ERROR"),
        ("crit", "FATAL"),
        ("critical", "FATAL"),
        ("panic", "FATAL"),
        ("emerg", "FATAL"),
        ("alert", "FATAL"),
        ("fatal", "FATAL"),
    ],
)
def test_level_names_map_case_insensitively(text: str, level: str) -> None:
    (item,) = decode_both({"app": "a", "level": text}, [(NOW_NS, "line", {})])
    assert (item["level"], item["attributes"]) == (level, {})


@pytest.mark.parametrize("key", loki.LEVEL_LABELS)
def test_every_level_key_is_read(key: str) -> None:
    (item,) = decode_both({"app": "a", key: "error"}, [(NOW_NS, "line", {})])
    assert (item["level"], item["attributes"]) == ("ERROR", {})


def test_the_first_level_key_decides_and_the_others_stay_attributes() -> None:
    (item,) = decode_both({"severity": "debug", "level": "error"}, [(NOW_NS, "line", {})])
    assert (item["level"], item["attributes"]) == ("ERROR", {"severity": "debug"})


def test_an_unknown_level_is_info_and_kept_in_attributes() -> None:
    (item,) = decode_both({"app": "a", "level": "verbose-ish"}, [(NOW_NS, "line", {})])
    assert (item["level"], item["attributes"]) == ("INFO", {"level": "verbose-ish"})
    (item,) = decode_both({"app": "a"}, [(NOW_NS, "line", {})])
    assert item["level"] == "INFO"


def test_structured_metadata_wins_over_labels() -> None:
    labels = {"app": "a", "level": "info", "region": "label"}
    items = decode_both(
        labels,
        [
            (NOW_NS, "metadata level", {"detected_level": "error", "region": "metadata"}),
            (NOW_NS, "metadata unknown level", {"level": "weird"}),
            (NOW_NS, "metadata without level", {"region": "metadata"}),
            (NOW_NS, "no metadata", {}),
        ],
    )
    assert [(i["level"], i["attributes"]) for i in items] == [
        ("ERROR", {"level": "info", "region": "metadata"}),  # the label that did not decide stays an attribute
        ("INFO", {"level": "weird", "region": "label"}),
        ("INFO", {"region": "metadata"}),
        ("INFO", {"region": "label"}),
    ]


def test_entries_do_not_share_attributes() -> None:
    first, second = decode_both({"app": "a", "k": "v"}, [(NOW_NS, "one", {}), (NOW_NS, "two", {})])
    first["attributes"]["mutated"] = True
    assert second["attributes"] == {"k": "v"}


def test_streams_and_entries_keep_their_order() -> None:
    body = push(
        ('{app="a"}', [(NOW_NS, "a1", {}), (NOW_NS, "a2", {})]),
        ('{app="b"}', [(NOW_NS, "b1", {})]),
        ('{app="c"}', []),
    )
    items = loki.decode(body, PROTOBUF, 10, MIB)
    assert [(i["source"], i["message"]) for i in items] == [("a", "a1"), ("a", "a2"), ("b", "b1")]


@pytest.mark.parametrize(
    ("nanos", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (32503680000 * 10**9, datetime(3000, 1, 1, tzinfo=UTC)),
        (253402300799 * 10**9 + 999_999_999, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (-(10**9), datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_timestamps_pass_through_as_datetimes(nanos: int, expected: datetime) -> None:
    request = loki.PushRequest()
    entry = request.streams.add(labels="{}").entries.add(line="x")
    entry.timestamp.seconds, entry.timestamp.nanos = divmod(nanos, 10**9)
    (item,) = loki.decode(snappy(request.SerializeToString()), PROTOBUF, 10, MIB)
    assert item["timestamp"] == expected
    if nanos >= 0:
        assert loki.decode(push_json(({}, [(nanos, "x", {})])), JSON, 10, MIB)[0]["timestamp"] == expected


@pytest.mark.parametrize("seconds", [253402300800, 2**63 - 1, -(2**63), -62135596801])
def test_protobuf_timestamps_outside_datetime_are_item_errors(seconds: int) -> None:
    request = loki.PushRequest()
    stream = request.streams.add(labels='{app="a"}')
    stream.entries.add(line="bad").timestamp.seconds = seconds
    stream.entries.add(line="good").timestamp.seconds = 1
    bad, good = loki.decode(snappy(request.SerializeToString()), PROTOBUF, 10, MIB)
    assert isinstance(bad, InvalidEventError)
    assert good["message"] == "good"


@pytest.mark.parametrize(
    "entry",
    [
        ["253402300800000000000", "year 10000"],
        ["9" * 5000, "huge"],
        ["-1", "negative"],
        ["12.5", "fraction"],
        [1700000000, "a number"],
        ["١٢", "arabic digits"],
        ["1", 5],
        ["1", "x", {"k": 1}],
        ["1", "x", ["k"]],
        ["1"],
        ["1", "x", {}, "extra"],
        "not a list",
        {"ts": "1", "line": "x"},
        ["1", ""],
    ],
)
def test_json_entries_of_the_wrong_shape_are_item_errors_alone(entry: Any) -> None:
    body = json.dumps({"streams": [{"stream": {"app": "a"}, "values": [entry, ["1", "good"]]}]}).encode()
    bad, good = loki.decode(body, JSON, 10, MIB)
    assert isinstance(bad, InvalidEventError)
    assert good["message"] == "good"


def test_an_empty_line_is_an_item_error() -> None:
    (item,) = loki.decode(push(("{}", [(1, "", {})])), PROTOBUF, 10, MIB)
    assert isinstance(item, InvalidEventError)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"streams": {}}',
        b'{"streams": [1]}',
        b'{"streams": [{"stream": {"a": 1}, "values": []}]}',
        b'{"streams": [{"stream": ["a"], "values": []}]}',
        b'{"streams": [{"stream": {}, "values": {}}]}',
        b'{"streams": [{"stream": {}, "values": [["1", "x"]]}], "x": NaN}',
        b'{"streams": [{"stream": {"a": "\xff"}, "values": []}]}',
        b'{"streams": [{"stream": {}, "values": [["1", "\xc3\x28"]]}]}',
        b"",
    ],
)
def test_json_bodies_of_the_wrong_shape_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        loki.decode(body, JSON, 10, MIB)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("{}", {}),
        ("{ }", {}),
        ('{a="b"}', {"a": "b"}),
        (' { a = "b" ,c="d"} ', {"a": "b", "c": "d"}),
        ('{a="b, c=\\"d\\"}"}', {"a": 'b, c="d"}'}),
        ('{a="tab\\there\\nnewline \\\\ \\u00e9\\U0001F600 \\x41\\101"}', {"a": "tab\there\nnewline \\ é😀 AA"}),
        ('{a="1", a="2"}', {"a": "2"}),
        ('{_under_score9="x"}', {"_under_score9": "x"}),
        ('{a="{}"}', {"a": "{}"}),
    ],
)
def test_labels_parse_prometheus_syntax(text: str, labels: dict[str, str]) -> None:
    assert loki.parse_labels(text) == labels


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        'a="b"',
        "{",
        "}",
        '{a="b"',
        '{a="b",}',
        "{a=b}",
        "{a='b'}",
        '{a="b" c="d"}',
        '{a="b"}}',
        '{a="b"} x',
        '{1a="b"}',
        '{a-b="c"}',
        '{a!="b"}',
        '{a=~"b"}',
        '{a="\\q"}',
        '{a="\\ud800"}',
        '{a="\\xff"}',
        '{a="\\U00110000"}',
        '{a="unterminated\\"}',
        '{="b"}',
    ],
)
def test_labels_that_are_not_prometheus_syntax_are_malformed(text: str) -> None:
    with pytest.raises(MalformedRequestError):
        loki.parse_labels(text)
    with pytest.raises(MalformedRequestError):
        loki.decode(push((text, [(1, "x", {})])), PROTOBUF, 10, MIB)


def _raw_push(labels: bytes, line: bytes) -> bytes:
    """A PushRequest written byte by byte, so strings can hold what protobuf's encoder would refuse."""
    entry = b"\x0a\x02\x08\x01" + b"\x12" + bytes([len(line)]) + line  # timestamp {seconds: 1}, line
    stream = b"\x0a" + bytes([len(labels)]) + labels + b"\x12" + bytes([len(entry)]) + entry
    return b"\x0a" + bytes([len(stream)]) + stream


def test_the_raw_push_helper_writes_a_valid_request() -> None:
    (item,) = loki.decode(snappy(_raw_push(b'{app="a"}', b"hello")), PROTOBUF, 10, MIB)
    assert (item["source"], item["message"]) == ("a", "hello")


@pytest.mark.parametrize(
    ("labels", "line"),
    [(b'{app="\xff"}', b"hello"), (b'{app="a"}', b"bad \xc3\x28 utf-8"), (b'{app="\xed\xa0\x80"}', b"surrogate")],
)
def test_invalid_utf8_in_a_label_or_a_line_is_malformed(labels: bytes, line: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        loki.decode(snappy(_raw_push(labels, line)), PROTOBUF, 10, MIB)


def test_protobuf_that_cannot_be_read_is_malformed() -> None:
    data = _raw_push(b'{app="a"}', b"hello")
    for raw in (data[:-2], data[:5], b"\xff" * 20, b"\x0a\xff\xff\xff\xff\x0f"):
        with pytest.raises(MalformedRequestError):
            loki.decode(snappy(raw), PROTOBUF, 10, MIB)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a preamble that never ends
        b"\x05abc",  # claims 5 bytes, holds garbage
        b"\x02" + bytes(cramjam.snappy.compress_raw(b"hello world"))[1:],  # claims fewer bytes than it inflates to
        bytes(cramjam.snappy.compress_raw(b"hello world"))[:-2],  # truncated
        bytes(cramjam.snappy.compress(b"framed, not block")),  # snappy's framed format
        b'{"streams": []}',  # JSON sent as protobuf
    ],
)
def test_bodies_that_are_not_snappy_blocks_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        loki.decode(body, PROTOBUF, 10, MIB)


def test_a_snappy_preamble_claiming_a_huge_size_is_refused_before_inflating() -> None:
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 16  # claims 4 GiB - 1
    with pytest.raises(PayloadTooLargeError):
        loki.decode(bomb, PROTOBUF, 10, MIB)


def test_a_real_snappy_bomb_is_refused_by_its_announced_size() -> None:
    bomb = snappy(bytes(64 * MIB))  # about 3 MiB of snappy inflating to 64 MiB
    assert len(bomb) < 4 * MIB
    with pytest.raises(PayloadTooLargeError) as refused:
        loki.decode(bomb, PROTOBUF, 10, MIB)
    assert refused.value.details == {"field": "decompressed_body", "limit": MIB}


def test_the_decoded_size_limit_is_inclusive() -> None:
    data = _raw_push(b'{app="a"}', b"hello")
    assert len(loki.decode(snappy(data), PROTOBUF, 10, len(data))) == 1
    with pytest.raises(PayloadTooLargeError):
        loki.decode(snappy(data), PROTOBUF, 10, len(data) - 1)


def test_100000_streams_are_refused_before_mapping() -> None:
    stream = b"\x0a" + bytes([len(_STREAM)]) + _STREAM
    body = snappy(stream * 100_000)
    with pytest.raises(PayloadTooLargeError) as refused:
        loki.decode(body, PROTOBUF, 1000, 64 * MIB)
    assert "100000" in refused.value.message
    document = {"streams": [{"stream": {}, "values": [["1", "x"]]}] * 100_000}
    with pytest.raises(PayloadTooLargeError):
        loki.decode(json.dumps(document).encode(), JSON, 1000, 64 * MIB)


_STREAM = b"\x0a\x02{}" + b"\x12\x05\x12\x03abc"  # labels "{}", one entry with line "abc"


def test_the_entry_count_limit_is_inclusive() -> None:
    body = push(('{app="a"}', [(1, "a", {}), (2, "b", {})]), ('{app="b"}', [(3, "c", {})]))
    assert len(loki.decode(body, PROTOBUF, 3, MIB)) == 3
    with pytest.raises(PayloadTooLargeError):
        loki.decode(body, PROTOBUF, 2, MIB)


def test_an_empty_content_type_is_read_as_protobuf_and_others_are_unsupported() -> None:
    assert len(loki.decode(push(('{app="a"}', [(1, "a", {})])), "", 10, MIB)) == 1
    assert loki.decode(b'{"streams": []}', "application/json; charset=utf-8", 10, MIB) == []
    for content_type in ("text/plain", "application/x-ndjson", "application/x-snappy"):
        with pytest.raises(UnsupportedMediaTypeError):
            loki.decode(b"", content_type, 10, MIB)


def test_the_hash_field_and_unknown_fields_are_ignored() -> None:
    request = loki.PushRequest()
    stream = request.streams.add(labels='{app="a"}', hash=12345)
    stream.entries.add(line="x")
    data = request.SerializeToString() + b"\x9a\x01\x03abc"  # field 19, bytes: a field from a future Loki
    (item,) = loki.decode(snappy(data), PROTOBUF, 10, MIB)
    assert item["message"] == "x"


def test_an_unknown_level_in_metadata_overrides_a_known_label_level() -> None:
    (item,) = decode_both({"app": "a", "level": "error"}, [(NOW_NS, "line", {"detected_level": "chatty"})])
    assert (item["level"], item["attributes"]) == ("INFO", {"level": "error", "detected_level": "chatty"})
