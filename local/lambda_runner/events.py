"""Event shapes of the AWS services the runner stands in for, and the mapping of handler results back to HTTP.

- API Gateway HTTP API, payload format 2.0 (request event and response interpretation);
- Amazon MSK / self-managed Kafka event source mappings (batch event).

Pure functions, no I/O: unit-tested against the Powertools data classes and parser models.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import pydantic_core

from .sam_model import DEFAULT_ACCOUNT_ID

HTTP_MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
LAMBDA_MAX_EVENT_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit

# Content types whose bodies API Gateway passes as text (anything else, or any content-encoding: base64).
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
    }
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ---------------------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class ApiInfo:
    api_id: str = "local000001"
    account_id: str = DEFAULT_ACCOUNT_ID
    stage: str = "$default"


def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def encode_body(body: bytes, content_type: str | None, content_encoding: str | None) -> tuple[str, bool]:
    """(body, isBase64Encoded) as API Gateway would pass it.

    Base64 when the body is compressed (content-encoding other than identity), when the content type is not
    textual, or when the bytes are not valid UTF-8. Without a content type, valid UTF-8 passes as text.
    """
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        return base64.b64encode(body).decode("ascii"), True
    if content_type and not is_text_content_type(content_type):
        return base64.b64encode(body).decode("ascii"), True
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def clf_time(epoch: float) -> str:
    """API Gateway's requestContext.time: 12/Mar/2020:19:03:58 +0000."""
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def new_apigw_request_id() -> str:
    """Looks like API Gateway's request ids (e.g. JKJaXmPLvHcESHA=)."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")


def build_http_event(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route_key: str,
    path_parameters: dict[str, str] | None,
    source_ip: str,
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
    api: ApiInfo = ApiInfo(),
    now: float | None = None,
    scheme: str = "http",
    server_port: int | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event.

    ``headers`` are (name, value) pairs as received. Header names are lower-cased and repeated headers joined
    with commas; the Cookie header becomes ``cookies``. Repeated query parameters are joined with commas.
    API Gateway's own forwarding headers (x-forwarded-for/-port/-proto, x-amzn-trace-id) are added.
    """
    now = time.time() if now is None else now
    merged, cookies = _merge_headers(headers)
    _add_forwarding_headers(merged, source_ip=source_ip, scheme=scheme, server_port=server_port, now=now)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query_string:
        event["queryStringParameters"] = _query_parameters(query_string)
    event["requestContext"] = _request_context(
        method=method,
        raw_path=raw_path,
        protocol=protocol,
        source_ip=source_ip,
        headers=merged,
        route_key=route_key,
        request_id=request_id or new_apigw_request_id(),
        api=api,
        now=now,
    )
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"], event["isBase64Encoded"] = encode_body(
            body, merged.get("content-type"), merged.get("content-encoding")
        )
    else:
        event["isBase64Encoded"] = False
    return event


def _merge_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """(headers by lower-case name, repeated ones joined with commas; the cookies of the Cookie headers)."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    return merged, cookies


def _add_forwarding_headers(
    headers: dict[str, str], *, source_ip: str, scheme: str, server_port: int | None, now: float
) -> None:
    """The headers API Gateway adds: x-forwarded-for/-proto/-port and x-amzn-trace-id."""
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
    headers.setdefault("x-forwarded-proto", scheme)
    if server_port is not None:
        headers.setdefault("x-forwarded-port", str(server_port))
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")


def _query_parameters(query_string: str) -> dict[str, str]:
    """queryStringParameters: repeated parameters joined with commas."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def _request_context(
    *,
    method: str,
    raw_path: str,
    protocol: str,
    source_ip: str,
    headers: dict[str, str],
    route_key: str,
    request_id: str,
    api: ApiInfo,
    now: float,
) -> dict[str, Any]:
    host = headers.get("host", "localhost")
    domain_name = host.split(":", 1)[0] if host.count(":") == 1 else host
    return {
        "accountId": api.account_id,
        "apiId": api.api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": api.stage,
        "time": clf_time(now),
        "timeEpoch": int(now * 1000),
    }


class InvalidResponse(ValueError):
    """The handler's result is not something API Gateway can turn into an HTTP response (-> 500)."""


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def map_http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Interpret a handler result the way API Gateway does for payload format 2.0.

    A dict with ``statusCode`` is a structured response (headers, multiValueHeaders, cookies -> Set-Cookie,
    body, isBase64Encoded). Anything else is a 200 application/json whose body is the result: a string as is,
    any other value JSON-serialized.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"))
        return 200, [("content-type", "application/json")], body.encode("utf-8")

    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise InvalidResponse(f"statusCode {result['statusCode']!r} is not an integer") from None
    if not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode {status} is out of range")

    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), _header_value(value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise InvalidResponse("cookies must be a list of strings")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))

    body = result.get("body")
    if body is None:
        raw = b""
    elif isinstance(body, str):
        if result.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidResponse("isBase64Encoded is true but the body is not base64") from None
        else:
            raw = body.encode("utf-8")
    else:
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return status, headers, raw


# --------------------------------------------------------------------------------------------------- Kafka
TIMESTAMP_TYPES = {1: "CREATE_TIME", 2: "LOG_APPEND_TIME"}


class KafkaRecord(NamedTuple):
    """One record of the batch event: its ``<topic>-<partition>`` group and its JSON, as the event carries it."""

    partition_key: str
    json: bytes


def kafka_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_type: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
) -> KafkaRecord:
    """One record as Lambda's Kafka event source mapping delivers it, already in JSON.

    The key is absent when the record has none, and so is the value of a tombstone (a null value): an empty
    value is an empty string, a null one is no ``value`` key at all. The record is written as bytes, its base64
    included, rather than built as a dict and serialized with the batch: a batch is thousands of records of
    about a kilobyte, and its base64 never becomes a str nor is scanned again for escaping.
    """
    parts = [
        b'{"topic":%b,"partition":%d,"offset":%d,"timestamp":%d,"timestampType":"%b"'
        % (
            _json_text(topic),
            partition,
            offset,
            timestamp if timestamp >= 0 else 0,
            _TIMESTAMP_TYPE_NAMES.get(timestamp_type, b"CREATE_TIME"),
        )
    ]
    if key is not None:
        parts += (b',"key":"', binascii.b2a_base64(key, newline=False), b'"')
    if value is not None:
        parts += (b',"value":"', binascii.b2a_base64(value, newline=False), b'"')
    parts += (
        b',"headers":',
        pydantic_core.to_json([{name: list(data or b"")} for name, data in headers]) if headers else b"[]",
        b"}",
    )
    return KafkaRecord(f"{topic}-{partition}", b"".join(parts))


_TIMESTAMP_TYPE_NAMES = {number: name.encode() for number, name in TIMESTAMP_TYPES.items()}


@lru_cache(maxsize=256)
def _json_text(text: str) -> bytes:
    """A topic name as a JSON string (cached: a poller sees a handful of topics, once per record)."""
    return pydantic_core.to_json(text)


def build_kafka_event(
    records: list[KafkaRecord],
    *,
    event_source: str,
    bootstrap_servers: str,
    event_source_arn: str | None = None,
) -> bytes:
    """The batch event's JSON: records grouped under "<topic>-<partition>" keys, in offset order within each."""
    grouped: dict[str, list[bytes]] = {}
    for record in records:
        grouped.setdefault(record.partition_key, []).append(record.json)
    envelope: dict[str, Any] = {"eventSource": event_source}
    if event_source_arn and event_source == "aws:kafka":
        envelope["eventSourceArn"] = event_source_arn
    envelope["bootstrapServers"] = bootstrap_servers
    parts = [pydantic_core.to_json(envelope)[:-1], b',"records":{']
    for key, jsons in grouped.items():
        parts += (b"," if len(parts) > 2 else b"", _json_text(key), b":[", b",".join(jsons), b"]")
    parts.append(b"}}")
    return b"".join(parts)


def parse_batch_item_failures(result: Any, batch_keys: set[str]) -> list[tuple[str, int]] | None:
    """The (``topic-partition``, offset) pairs a handler reported as failed.

    Returns [] when the result reports no failure, and None when the response is malformed (an unknown
    partition, a missing offset ...), which Lambda treats as a failure of the whole batch.
    """
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return []
    failures = result["batchItemFailures"]
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    out: list[tuple[str, int]] = []
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, dict):
            return None
        partition, offset = ident.get("partition"), ident.get("offset")
        if partition not in batch_keys or isinstance(offset, bool):
            return None
        try:
            out.append((str(partition), int(offset)))
        except (TypeError, ValueError):
            return None
    return out
