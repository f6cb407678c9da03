"""The native batch (`POST /api/logs/batch`): a JSON array, {"events": [...]} or NDJSON, each item in the ingest
body's shape (logpipe.models.LogEventIn)."""

import json
from typing import Any

from logpipe.edge.body import loads
from logpipe.errors import InvalidEventError, MalformedRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from logpipe.models import DecodedBatch

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


def decode(text: str, content_type: str, max_items: int) -> DecodedBatch:
    """The batch's items; raises PayloadTooLargeError over `max_items`, InvalidEventError when it holds none."""
    items = batch_items(text, content_type, max_items)
    if not items:
        raise InvalidEventError("the batch holds no event", details={"field": "events"})
    return DecodedBatch.of(items, text.encode())


def batch_items(text: str, content_type: str, max_items: int) -> list[Any | MalformedRequestError | InvalidEventError]:
    """The items of a batch body: decoded values, or per NDJSON line the error that line raised.

    More than `max_items` is refused before any NDJSON line is parsed.
    """
    media_type = content_type.split(";")[0].strip().lower()
    if media_type in NDJSON_TYPES:
        lines = [line for line in text.split("\n") if line.strip()]
        return [_ndjson_line(line) for line in _at_most(lines, max_items)]
    if media_type not in ("", "application/json"):
        raise UnsupportedMediaTypeError(
            "Content-Type must be application/json or application/x-ndjson", details={"received": media_type[:64]}
        )
    try:
        document = loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRequestError("malformed_json", "The request body is not valid JSON") from exc
    if isinstance(document, dict) and set(document) == {"events"} and isinstance(document["events"], list):
        return _at_most(document["events"], max_items)
    if isinstance(document, list):
        return _at_most(document, max_items)
    raise MalformedRequestError(
        "invalid_batch", 'A batch is a JSON array, {"events": [...]} or NDJSON (Content-Type: application/x-ndjson)'
    )


def _at_most(items: list[Any], max_items: int) -> list[Any]:
    if len(items) > max_items:
        raise PayloadTooLargeError(
            f"the batch holds {len(items)} events; the limit is {max_items}",
            details={"field": "events", "limit": max_items},
        )
    return items


def _ndjson_line(line: str) -> Any | MalformedRequestError | InvalidEventError:
    try:
        return loads(line)
    except json.JSONDecodeError:
        return MalformedRequestError("malformed_json", "This line is not valid JSON")
    except (MalformedRequestError, InvalidEventError) as error:
        return error
