"""OTLP/HTTP logs (`POST /v1/logs`): an `ExportLogsServiceRequest`, as protobuf (`application/x-protobuf`, parsed
by opentelemetry-proto's generated classes on protobuf's upb backend) or as OTLP JSON (`application/json`:
lowerCamelCase field names, hex trace and span ids, enums as integers or names, 64-bit integers as strings or
numbers), to the common list of items.

| OTLP                                                 | item                                                      |
|------------------------------------------------------|-----------------------------------------------------------|
| `body` string                                        | `message` as is                                           |
| `body` of another kind                               | `message` = the JSON text of the value (1)                |
| `body` absent or ""                                  | item error (logpipe needs a non-empty message)            |
| `severity_number` 1-4, 5-8, 9-12, 13-16, 17-20, 21-24| `level` TRACE, DEBUG, INFO, WARN, ERROR, FATAL            |
| `severity_number` 0 (unspecified)                    | `level` from `severity_text` if a level name (2), else INFO|
| `severity_number` outside 0-24                       | item error                                                |
| `severity_text` not naming the chosen level          | attribute `otel.severity_text` (one naming it is dropped) |
| `time_unix_nano`, else `observed_time_unix_nano`     | `timestamp`, UTC, truncated to the microsecond (3)        |
| both timestamps 0 (unset)                            | no `timestamp`: the batch path stamps the received time   |
| a timestamp negative or past 9999-12-31 (JSON only)  | item error (protobuf's fixed64 nanoseconds end in 2554)   |
| resource attribute `service.name` (non-empty)        | `source`, not repeated in attributes                      |
| no `service.name`                                    | `source` = `unknown_service`, as the OTel SDKs say        |
| resource, scope and record `attributes`              | `attributes`, keys as OTel names them (already dotted) (4)|
| scope `name` / `version` (non-empty)                 | attributes `otel.scope.name` / `otel.scope.version`       |
| `event_name` (non-empty)                             | attribute `event.name`                                    |
| `trace_id` / `span_id`                               | `traceId` / `spanId`, lowercase hex; 0 or empty: absent (5)|
| `flags`, `dropped_attributes_count`, schema URLs     | dropped                                                   |

(1) See "AnyValue to JSON" below; the text is compact JSON (no blanks, non-ASCII kept).
(2) Names as logpipe.edge.decoders.common lists them, case-insensitive.
(3) OTLP says 0 means unset, so a record stamped 0 is "no timestamp", not 1970.
(4) A key present at several levels: record attribute wins over scope over resource. `otel.scope.*` win over a
    scope attribute of that name, `event.name` over a scope one; a record attribute of that name wins over both.
(5) In JSON, an id that is not the hex of 16 (trace) or 8 (span) bytes is an item error.

AnyValue to JSON: string, bool and int as themselves (int64, exact); double as a number, NaN and the infinities as
the strings "NaN", "Infinity", "-Infinity" (as OTLP JSON writes them); bytes as a base64 string; array as a list;
kvlist as an object (a key repeated: the last wins); an empty AnyValue as null.

A body that is not an `ExportLogsServiceRequest` (truncated or not protobuf, invalid UTF-8 in a string, not JSON,
an envelope of the wrong shape, resource or scope attributes of the wrong types) raises MalformedRequestError; a
record that cannot be mapped is replaced by the InvalidEventError saying why.
"""

import base64
import json
import math
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from logpipe.edge.decoders.common import check_count, from_nanos, level_of, load_json
from logpipe.errors import InvalidEventError, LogpipeError, MalformedRequestError, UnsupportedMediaTypeError

UNKNOWN_SERVICE = "unknown_service"
_LEVEL_OF_NUMBER = (
    (None,) + ("TRACE",) * 4 + ("DEBUG",) * 4 + ("INFO",) * 4 + ("WARN",) * 4 + ("ERROR",) * 4 + ("FATAL",) * 4
)
_NUMBER_OF_NAME = dict(SeverityNumber.items())  # "SEVERITY_NUMBER_INFO" -> 9, for JSON senders writing enum names
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_SCALARS = frozenset(("string_value", "int_value", "bool_value"))
_NO_BODY = "the log record has no body (logpipe needs a non-empty message)"
_FLOAT_NAMES = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}

Item = dict[str, Any] | LogpipeError


def decode(body: bytes, content_type: str, max_items: int, max_decoded_bytes: int) -> list[Item]:
    """The items of an OTLP/HTTP logs request, one per log record, in the request's order.

    `max_decoded_bytes` is not used: OTLP has no compression of its own (the caller undid Content-Encoding).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-protobuf":
        return _decode_protobuf(body, max_items)
    if media_type == "application/json":
        return _decode_json(body, max_items)
    raise UnsupportedMediaTypeError(
        "Content-Type must be application/x-protobuf or application/json",
        details={"received": media_type[:64]},
    )


# --- protobuf ---------------------------------------------------------------------------------------------------


def _decode_protobuf(body: bytes, max_items: int) -> list[Item]:
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise MalformedRequestError("malformed_protobuf", "The body is not an OTLP ExportLogsServiceRequest") from exc
    resource_logs = request.resource_logs
    check_count(
        sum(len(scope.log_records) for resource in resource_logs for scope in resource.scope_logs),
        max_items,
        "log records",
    )
    items: list[Item] = []
    append = items.append
    for resource_log in resource_logs:
        resource_attributes = {kv.key: _value(kv.value) for kv in resource_log.resource.attributes}
        source = resource_attributes.pop("service.name", None)
        source = _json_text(source) if source not in (None, "") else UNKNOWN_SERVICE
        for scope_log in resource_log.scope_logs:
            scope = scope_log.scope
            base = {**resource_attributes}
            for kv in scope.attributes:
                base[kv.key] = _value(kv.value)
            if scope.name:
                base["otel.scope.name"] = scope.name
            if scope.version:
                base["otel.scope.version"] = scope.version
            for record in scope_log.log_records:  # the hot loop: one upb attribute read per field, no calls
                body = record.body
                message = body.string_value
                if not message:
                    kind = body.WhichOneof("value")
                    message = _json_text(_value(body)) if kind and kind != "string_value" else ""
                    if not message:
                        append(InvalidEventError(_NO_BODY))
                        continue
                attributes = base.copy()
                event_name = record.event_name
                if event_name:
                    attributes["event.name"] = event_name
                for kv in record.attributes:
                    value = kv.value
                    string = value.string_value  # most attributes are strings: skip WhichOneof for them
                    if string:
                        attributes[kv.key] = string
                    else:
                        kind = value.WhichOneof("value")
                        attributes[kv.key] = getattr(value, kind) if kind in _SCALARS else _value(value)
                number, text = record.severity_number, record.severity_text
                if 0 < number <= 24:
                    level = _LEVEL_OF_NUMBER[number]
                    if text and text != level and level_of(text) != level:
                        attributes["otel.severity_text"] = text
                elif number:
                    append(_bad_severity(number))
                    continue
                else:
                    level = _level(0, text, attributes)
                item = {"level": level, "message": message, "source": source, "attributes": attributes}
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                if nanos:
                    item["timestamp"] = from_nanos(nanos)  # fixed64 nanoseconds end in 2554: always a datetime
                trace_id = record.trace_id
                if trace_id and trace_id != _ZERO_TRACE:
                    item["traceId"] = trace_id.hex()
                span_id = record.span_id
                if span_id and span_id != _ZERO_SPAN:
                    item["spanId"] = span_id.hex()
                append(item)
    return items


def _value(value: Any) -> Any:
    """An AnyValue message as plain JSON-ready Python."""
    kind = value.WhichOneof("value")
    if kind == "string_value" or kind == "int_value" or kind == "bool_value":
        return getattr(value, kind)
    if kind == "double_value":
        return _double(value.double_value)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [_value(element) for element in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _double(number: float) -> float | str:
    if math.isfinite(number):
        return number
    return "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")


# --- JSON -------------------------------------------------------------------------------------------------------


def _decode_json(body: bytes, max_items: int) -> list[Item]:
    document = load_json(body, "OTLP")
    try:
        resource_logs = _list(document.get("resourceLogs")) if type(document) is dict else None
        if resource_logs is None:
            raise TypeError("resourceLogs")
        scopes = [
            [(scope_log, _list(scope_log.get("logRecords"))) for scope_log in _list(resource_log.get("scopeLogs"))]
            for resource_log in resource_logs
        ]
    except (TypeError, AttributeError) as exc:
        raise _malformed_json() from exc
    check_count(sum(len(records) for scope_logs in scopes for _, records in scope_logs), max_items, "log records")
    items: list[Item] = []
    append = items.append
    for resource_log, scope_logs in zip(resource_logs, scopes, strict=True):
        try:
            resource = resource_log.get("resource") or {}
            resource_attributes = _json_attributes(resource.get("attributes"), {})
        except (TypeError, ValueError, AttributeError, InvalidEventError) as exc:
            raise _malformed_json("resource attributes") from exc
        source = resource_attributes.pop("service.name", None)
        source = _json_text(source) if source not in (None, "") else UNKNOWN_SERVICE
        for scope_log, records in scope_logs:
            try:
                scope = scope_log.get("scope") or {}
                base = _json_attributes(scope.get("attributes"), {**resource_attributes})
                name, version = scope.get("name"), scope.get("version")
                if name:
                    base["otel.scope.name"] = _string(name)
                if version:
                    base["otel.scope.version"] = _string(version)
            except (TypeError, ValueError, AttributeError, InvalidEventError) as exc:
                raise _malformed_json("scope") from exc
            for record in records:
                try:
                    append(_json_item(record, source, base))
                except InvalidEventError as error:
                    append(error)
                except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
                    append(InvalidEventError("the log record has a field of the wrong type", details=str(exc)[:200]))
    return items


def _json_item(record: dict[str, Any], source: str, base: dict[str, Any]) -> dict[str, Any]:
    body = record.get("body")
    message = body.get("stringValue") if body else None
    if type(message) is not str:
        message = "" if not body else _json_text(_json_value(body))
    if not message:
        raise InvalidEventError(_NO_BODY)
    event_name = record.get("eventName")
    attributes = _json_attributes(
        record.get("attributes"), {**base, "event.name": _string(event_name)} if event_name else {**base}
    )
    number = record.get("severityNumber", 0)
    if type(number) is str:
        number = _NUMBER_OF_NAME.get(number, number)
    text = record.get("severityText", "")
    item = {
        "level": _level(number, _string(text), attributes),
        "message": message,
        "source": source,
        "attributes": attributes,
    }
    nanos = _nanos(record.get("timeUnixNano")) or _nanos(record.get("observedTimeUnixNano"))
    if nanos:
        item["timestamp"] = from_nanos(nanos)
    trace_id = record.get("traceId")
    if trace_id:
        trace_id = _hex_id(trace_id, 16, "traceId")
        if trace_id:
            item["traceId"] = trace_id
    span_id = record.get("spanId")
    if span_id:
        span_id = _hex_id(span_id, 8, "spanId")
        if span_id:
            item["spanId"] = span_id
    return item


def _json_attributes(key_values: Any, into: dict[str, Any]) -> dict[str, Any]:
    if key_values is None:
        return into
    if type(key_values) is not list:
        raise InvalidEventError("attributes must be a list of {key, value}", details={"field": "attributes"})
    for kv in key_values:
        key, value = kv["key"], kv.get("value")
        if type(key) is not str:
            raise InvalidEventError("an attribute key must be a string", details={"field": "attributes"})
        string = value.get("stringValue") if value else None
        into[key] = string if type(string) is str else _json_value(value)
    return into


def _json_value(value: Any) -> Any:
    """An OTLP JSON AnyValue object as plain Python (an empty or absent AnyValue is null)."""
    if not value:
        return None
    if type(value) is not dict:
        raise InvalidEventError("an AnyValue must be an object", details={"received": type(value).__name__})
    for kind, inner in value.items():  # one key set: the first one decides
        if kind == "stringValue":
            return _string(inner)
        if kind == "intValue":
            return _integer(inner)
        if kind == "boolValue":
            if type(inner) is not bool:
                raise InvalidEventError("boolValue must be true or false")
            return inner
        if kind == "doubleValue":
            if type(inner) is str and inner in _FLOAT_NAMES:
                return inner
            if type(inner) is bool or type(inner) not in (int, float, str):
                raise InvalidEventError("doubleValue must be a number")
            return float(inner)
        if kind == "bytesValue":
            return _string(inner)  # already base64 in OTLP JSON
        if kind == "arrayValue":
            return [_json_value(element) for element in _list(inner.get("values"))]
        if kind == "kvlistValue":
            return _json_attributes(inner.get("values"), {})
    return None


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise TypeError("expected a list")
    return value


def _string(value: Any) -> str:
    if type(value) is not str:
        raise InvalidEventError("expected a string", details={"received": type(value).__name__})
    return value


def _integer(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit():
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    raise InvalidEventError("an int64 must be an integer or a string of digits", details={"received": str(value)[:64]})


def _nanos(value: Any) -> int:
    if not value:
        return 0
    nanos = int(value) if type(value) is str and len(value) < 25 and value.isdigit() else _integer(value)
    if nanos < 0:
        raise InvalidEventError("a timestamp cannot be negative", details={"field": "timestamp"})
    return nanos


def _hex_id(value: Any, size: int, field: str) -> str | None:
    if type(value) is str and len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            pass
        else:
            return None if raw == bytes(size) else value.lower()
    raise InvalidEventError(f"{field} must be the hex of {size} bytes", details={"field": field})


def _malformed_json(part: str = "envelope") -> MalformedRequestError:
    return MalformedRequestError(
        "malformed_otlp", f"The body is not an OTLP ExportLogsServiceRequest in JSON (its {part} has the wrong shape)"
    )


# --- both -------------------------------------------------------------------------------------------------------


def _bad_severity(number: Any) -> InvalidEventError:
    return InvalidEventError(
        "severity_number must be 0 to 24", details={"field": "severity_number", "received": str(number)[:32]}
    )


def _level(number: Any, text: str, attributes: dict[str, Any]) -> str:
    if number:
        if type(number) is not int or not 0 < number <= 24:
            raise _bad_severity(number)
        level = _LEVEL_OF_NUMBER[number]
        if text and level_of(text) != level:
            attributes["otel.severity_text"] = text
        return level
    if text:
        level = level_of(text)
        if level:
            return level
        attributes["otel.severity_text"] = text
    return "INFO"


def _json_text(value: Any) -> str:
    if type(value) is str:
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
