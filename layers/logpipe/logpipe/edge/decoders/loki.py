"""Loki push (`POST /loki/api/v1/push`) to the common list of items.

Two bodies:
- `application/x-protobuf` (also an empty Content-Type, as Loki reads it): a `logproto.PushRequest` compressed with
  snappy's BLOCK format (not the framed one). The uncompressed length the block announces is checked against
  `max_decoded_bytes` before anything is inflated, and the inflated size must match it exactly.
  The message classes are built at import by `_push_request_class` from the wire fields of Loki's
  `pkg/push/push.proto` (on a private descriptor pool), so no generated module or protoc is needed.
- `application/json`: `{"streams": [{"stream": {label: value}, "values": [["<ns>", "<line>"(, {metadata})]]}]}`.

| Loki                                           | item                                                         |
|------------------------------------------------|--------------------------------------------------------------|
| entry line                                     | `message`; an empty line is an item error                    |
| entry timestamp (1)                            | `timestamp`, UTC, truncated to the microsecond               |
| first non-empty label of SOURCE_LABELS (2)     | `source`, not repeated in attributes; none: `unknown`        |
| first key of LEVEL_LABELS present (3)          | `level` by the names in ...decoders.common; none: INFO       |
| a level text that is not a level name          | `level` INFO; the text stays in attributes                   |
| every other label and structured-metadata pair | `attributes`; metadata wins over a label of the same name    |

(1) A protobuf Timestamp, or in JSON a string of Unix nanoseconds. Timestamp 0 is 1970-01-01 and a year-3000
    timestamp is year 3000: the batch path's skew check judges them. An instant outside the years 1 to 9999, or
    a JSON timestamp that is not a string of digits, is an item error.
(2) `service_name`, `service`, `job`, `app`, `application`, `container`, `namespace`, in that order; labels only.
(3) `level`, `detected_level`, `severity`, `lvl`, `loglevel`, in that order, looked for first in the entry's
    structured metadata, then in the stream's labels: any level key in the metadata wins over every level label.
    The key that set the level is not repeated in attributes; a level label overridden by the metadata is.

Refused with MalformedRequestError (Loki answers 400 to all of these): a body that is not snappy or not a
PushRequest, invalid UTF-8 in a label or a line (the protobuf parser checks it), a labels string that is not
Prometheus label syntax (`{name="value", ...}`, Go string escapes; `\\x` and octal escapes above 0x7F,
raw bytes in Go, are refused too), JSON of the wrong shape around the entries.
Over `max_items` entries, or a snappy block announcing more than `max_decoded_bytes`: PayloadTooLargeError.
In JSON, an entry of the wrong shape (not `[ts, line]` or `[ts, line, {str: str}]`) is an item error.
"""

import re
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from logpipe.edge.decoders.common import check_count, from_micros, from_nanos, level_of, load_json
from logpipe.errors import (
    InvalidEventError,
    LogpipeError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

SOURCE_LABELS = ("service_name", "service", "job", "app", "application", "container", "namespace")
LEVEL_LABELS = ("level", "detected_level", "severity", "lvl", "loglevel")
UNKNOWN_SOURCE = "unknown"

Item = dict[str, Any] | LogpipeError


def _push_request_class() -> Any:
    """logproto.PushRequest, built from its wire description on a private pool (nothing global is registered)."""
    F = descriptor_pb2.FieldDescriptorProto
    optional, repeated = F.LABEL_OPTIONAL, F.LABEL_REPEATED

    def field(name: str, number: int, kind: int, label: int = optional, type_name: str = "") -> Any:
        proto = F(name=name, number=number, type=kind, label=label, json_name=name)
        if type_name:
            proto.type_name = type_name
        return proto

    file = descriptor_pb2.FileDescriptorProto(
        name="logpipe/loki_push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    file.message_type.add(name="PushRequest").field.append(
        field("streams", 1, F.TYPE_MESSAGE, repeated, ".logproto.StreamAdapter")
    )
    file.message_type.add(name="StreamAdapter").field.extend(
        [
            field("labels", 1, F.TYPE_STRING),
            field("entries", 2, F.TYPE_MESSAGE, repeated, ".logproto.EntryAdapter"),
            field("hash", 3, F.TYPE_UINT64),
        ]
    )
    file.message_type.add(name="EntryAdapter").field.extend(
        [
            field("timestamp", 1, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"),
            field("line", 2, F.TYPE_STRING),
            field("structuredMetadata", 3, F.TYPE_MESSAGE, repeated, ".logproto.LabelPairAdapter"),
        ]
    )
    file.message_type.add(name="LabelPairAdapter").field.extend(
        [field("name", 1, F.TYPE_STRING), field("value", 2, F.TYPE_STRING)]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(timestamp_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


PushRequest = _push_request_class()


def decode(body: bytes, content_type: str, max_items: int, max_decoded_bytes: int) -> list[Item]:
    """The items of a Loki push request, one per entry, in the request's order (stream by stream)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("application/x-protobuf", ""):
        return _decode_protobuf(unsnappy(body, max_decoded_bytes), max_items)
    if media_type == "application/json":
        return _decode_json(body, max_items)
    raise UnsupportedMediaTypeError(
        "Content-Type must be application/x-protobuf (snappy) or application/json",
        details={"received": media_type[:64]},
    )


def unsnappy(body: bytes, max_decoded_bytes: int) -> bytes:
    """Inflate a snappy block, refusing (413) one whose announced length is over `max_decoded_bytes` before
    allocating anything; snappy fails on output longer or shorter than announced, so the bound holds."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise _malformed("The body is not snappy-compressed (block format)") from exc
    if size > max_decoded_bytes:
        raise PayloadTooLargeError(
            f"The decompressed body is over {max_decoded_bytes} bytes",
            details={"field": "decompressed_body", "limit": max_decoded_bytes},
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise _malformed("The body is not valid snappy (block format)") from exc


# --- labels -----------------------------------------------------------------------------------------------------

_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})', re.DOTALL)
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_LABELS_SYNTAX = 'Stream labels must be written {name="value", ...}'


def parse_labels(text: str) -> dict[str, str]:
    """`{name="value", ...}` (Prometheus label syntax, Go string escapes) as a dict; MalformedRequestError otherwise.
    A repeated name keeps its last value."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        raise _malformed(_LABELS_SYNTAX)
    labels: dict[str, str] = {}
    if not stripped[1:-1].strip():
        return labels
    position, end = 1, len(stripped)
    while True:
        match = _LABEL.match(stripped, position)
        if match is None:
            raise _malformed(_LABELS_SYNTAX)
        name, value, separator = match.groups()
        labels[name] = _unescape(value) if "\\" in value else value
        position = match.end()
        if separator == "}":
            if position != end:
                raise _malformed(_LABELS_SYNTAX)
            return labels


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        simple, hex2, octal, hex4, hex8, unknown = match.groups()
        if unknown is not None:
            raise _malformed(f"Unknown escape \\{unknown} in a label value")
        if simple is not None:
            return _SIMPLE_ESCAPES.get(simple, simple)
        code = int(hex2 or hex4 or hex8, 16) if octal is None else int(octal, 8)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or ((hex2 or octal) and code > 0x7F):
            raise _malformed("A label value escapes an invalid character")  # \x and octal are bytes in Go
        return chr(code)

    return _ESCAPE.sub(one, value)


# --- stream mapping (shared by both bodies) -----------------------------------------------------------------------


class _Stream:
    """What every entry of a stream shares: source, the level from its labels, the attributes its labels give."""

    __slots__ = ("attributes", "level", "level_label", "source")

    def __init__(self, labels: dict[str, str]) -> None:
        attributes = dict(labels)
        self.source = UNKNOWN_SOURCE
        for key in SOURCE_LABELS:
            value = attributes.get(key)
            if value:
                self.source = value
                del attributes[key]
                break
        self.level, self.level_label = "INFO", None
        for key in LEVEL_LABELS:
            value = attributes.get(key)
            if value is not None:
                level = level_of(value)
                if level:
                    self.level, self.level_label = level, (key, value)
                    del attributes[key]
                break
        self.attributes = attributes

    def item(self, message: str, timestamp: Any, metadata: dict[str, str] | None) -> dict[str, Any]:
        if not message:
            raise InvalidEventError("the entry's line is empty (logpipe needs a non-empty message)")
        if not metadata:
            return {
                "level": self.level,
                "message": message,
                "source": self.source,
                "timestamp": timestamp,
                "attributes": {**self.attributes},
            }
        level, attributes = self.level, {**self.attributes, **metadata}
        for key in LEVEL_LABELS:
            value = metadata.get(key)
            if value is not None:  # the metadata's level key decides, over the labels'
                level = level_of(value)
                if level:
                    del attributes[key]
                else:
                    level = "INFO"  # not a level name: INFO, the text stays in attributes
                if self.level_label is not None:  # the label that did not decide stays an attribute
                    attributes.setdefault(*self.level_label)
                break
        return {
            "level": level,
            "message": message,
            "source": self.source,
            "timestamp": timestamp,
            "attributes": attributes,
        }


# --- protobuf ---------------------------------------------------------------------------------------------------


def _decode_protobuf(data: bytes, max_items: int) -> list[Item]:
    try:
        request = PushRequest.FromString(data)
    except DecodeError as exc:
        raise _malformed("The body is not a Loki PushRequest (or holds invalid UTF-8)") from exc
    streams = request.streams
    check_count(sum(len(stream.entries) for stream in streams), max_items, "entries")
    items: list[Item] = []
    append = items.append
    for stream in streams:
        shared = _Stream(parse_labels(stream.labels))
        for entry in stream.entries:
            try:
                stamp = entry.timestamp
                timestamp = from_micros(stamp.seconds * 1_000_000 + stamp.nanos // 1000)
                metadata = {pair.name: pair.value for pair in entry.structuredMetadata} or None
                append(shared.item(entry.line, timestamp, metadata))
            except InvalidEventError as error:
                append(error)
    return items


# --- JSON -------------------------------------------------------------------------------------------------------


def _decode_json(body: bytes, max_items: int) -> list[Item]:
    document = load_json(body, "Loki push")
    streams = document.get("streams") if type(document) is dict else None
    if type(streams) is not list:
        raise _malformed('A Loki push body is {"streams": [{"stream": {...}, "values": [...]}]}')
    for stream in streams:
        if type(stream) is not dict or type(stream.get("values", [])) is not list:
            raise _malformed('Each stream is {"stream": {label: value}, "values": [[ts, line], ...]}')
    check_count(sum(len(stream.get("values", ())) for stream in streams), max_items, "entries")
    items: list[Item] = []
    append = items.append
    for stream in streams:
        labels = stream.get("stream") or {}
        if type(labels) is not dict or not all(type(value) is str for value in labels.values()):
            raise _malformed("A stream's labels must be an object of strings")
        shared = _Stream(labels)
        for entry in stream.get("values", ()):
            try:
                append(_json_entry(shared, entry))
            except InvalidEventError as error:
                append(error)
    return items


def _json_entry(shared: _Stream, entry: Any) -> dict[str, Any]:
    if type(entry) is not list or not 2 <= len(entry) <= 3:
        raise InvalidEventError('an entry must be ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]')
    stamp, line = entry[0], entry[1]
    if type(stamp) is not str or not stamp.isdigit() or not stamp.isascii():
        raise InvalidEventError("an entry's timestamp must be a string of nanoseconds", details={"field": "timestamp"})
    if type(line) is not str:
        raise InvalidEventError("an entry's line must be a string", details={"field": "message"})
    metadata = entry[2] if len(entry) == 3 else None
    if metadata is not None and (
        type(metadata) is not dict or not all(type(value) is str for value in metadata.values())
    ):
        raise InvalidEventError("structured metadata must be an object of strings", details={"field": "attributes"})
    if len(stamp) > 24:  # past the year 9999 anyway; int() of a huge string would be slow
        raise InvalidEventError("the timestamp is outside the years 1 to 9999", details={"field": "timestamp"})
    return shared.item(line, from_nanos(int(stamp)), metadata)


def _malformed(message: str) -> MalformedRequestError:
    return MalformedRequestError("malformed_loki_push", message)
