"""Elasticsearch `_bulk` (`POST /_bulk`, `POST /{index}/_bulk`): NDJSON action and document lines to the common list
of items, with each item's action, `_index` and `_id` beside it for the per-item answer.

Lines: an action line (`{"create": {...}}`, `{"index": {...}}`, `{"update": {...}}` or `{"delete": {...}}`) is
followed by one document line, except `delete`, which has none. Blank lines between items are skipped; a blank line
where a document is due is that (empty) document. Pairing is positional, as in Elasticsearch.

| action line                                      | result                                                    |
|--------------------------------------------------|-----------------------------------------------------------|
| `create`, `index`                                | an item from its document (below)                         |
| `update` (its document line is skipped), `delete`| item error: logpipe only appends                          |
| `_index`, else the URL's index (`default_index`) | `BulkAction.index`; neither: MalformedRequestError        |
| `_id` (string, or a number as its text)          | `BulkAction.id`; over 512 bytes: item error               |
| `_type` and any other parameter                  | ignored                                                   |
| not JSON, not exactly one of the four actions    | MalformedRequestError (Elasticsearch answers 400)         |
| metadata not an object, bad `_index` or `_id`    | MalformedRequestError                                     |
| the last action's document line missing          | MalformedRequestError                                     |

| document                                              | item                                                 |
|-------------------------------------------------------|------------------------------------------------------|
| `@timestamp` (1)                                      | `timestamp` in UTC; unreadable: item error           |
| no `@timestamp`                                       | no `timestamp`: the batch path stamps received time  |
| first non-empty string among `message`, `log`, `msg`  | `message`; none: item error                          |
| first present of `log.level` (2), `level`, `severity` | `level` by the names in ...decoders.common; none: INFO|
| a level value that is not a level name (or no string) | `level` INFO, the value stays in attributes          |
| first non-empty string of `service.name` (2), `source`| `source`; none: the item's `_index`                  |
| everything else (`host.name` included)                | `attributes` as sent: nested objects stay nested     |

(1) An ISO 8601 string (no offset: UTC; other offsets converted), or epoch milliseconds as a number or a string of
    digits (Elasticsearch's default `strict_date_optional_time||epoch_millis`).
(2) The nested form (`{"log": {"level": ..}}`, `{"service": {"name": ..}}`) first, then the dotted key.

The fields used for timestamp, message, level and source are removed from attributes (a parent object left empty
by that, such as `log` or `service`, goes too). A document line that is not a JSON object is an item error (as
Elasticsearch's per-item mapping error). More than `max_items` actions: PayloadTooLargeError, counted before any
document is read.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from logpipe.edge.decoders.common import from_micros, level_of, parse_json
from logpipe.errors import (
    InvalidEventError,
    LogpipeError,
    MalformedRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

ACCEPTED_TYPES = ("application/x-ndjson", "application/json", "application/vnd.elasticsearch+x-ndjson", "")
MAX_ID_BYTES = 512
_ACTIONS_WITH_DOCUMENT = {"create": True, "index": True, "update": True, "delete": False}
_MESSAGE_FIELDS = ("message", "log", "msg")

Item = dict[str, Any] | LogpipeError


@dataclass(frozen=True, slots=True)
class BulkAction:
    """What an item's answer names: the action (`create`, `index`, `update`, `delete`), `_index` and `_id`."""

    action: str
    index: str
    id: str | None


@dataclass(frozen=True, slots=True)
class BulkRequest:
    """The items (or the error refusing each) and, at the same positions, the action lines they came from."""

    items: list[Item]
    actions: list[BulkAction]


def decode(
    body: bytes, content_type: str, max_items: int, max_decoded_bytes: int, default_index: str | None = None
) -> BulkRequest:
    """The items of a `_bulk` body. `default_index` is the URL's `{index}`, for actions naming none.

    `max_decoded_bytes` is not used: `_bulk` has no compression of its own (the caller undid Content-Encoding).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        raise UnsupportedMediaTypeError(
            "Content-Type must be application/x-ndjson or application/json", details={"received": media_type[:64]}
        )
    pairs = _pairs(body.split(b"\n"), max_items, default_index)
    items: list[Item] = []
    append = items.append
    for action, document in pairs:
        if document is None or action.action == "update":
            append(
                InvalidEventError(
                    f"the {action.action} action is not supported: logpipe only appends (create or index)",
                    details={"action": action.action},
                )
            )
        elif action.id is not None and len(action.id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            append(
                InvalidEventError(
                    f"_id is longer than {MAX_ID_BYTES} bytes", details={"field": "_id", "limit": MAX_ID_BYTES}
                )
            )
        else:
            try:
                append(_item(document, action.index))
            except InvalidEventError as error:
                append(error)
    return BulkRequest(items, [action for action, _ in pairs])


def _pairs(lines: list[bytes], max_items: int, default_index: str | None) -> list[tuple[BulkAction, bytes | None]]:
    """(action, its document line) for each item; refuses over `max_items` as soon as the count passes it."""
    pairs: list[tuple[BulkAction, bytes | None]] = []
    known: dict[bytes, BulkAction] = {}  # action lines repeat: parse each text once, share its (frozen) BulkAction
    position, count = 0, len(lines)
    while position < count:
        line = lines[position]
        position += 1
        action = known.get(line)
        if action is None:
            if not line.strip():
                continue
            name, index, id_ = _action(line, position)
            index = index or default_index
            if index is None:
                raise _malformed(f"The action on line {position} names no _index and the URL names none")
            action = known[line] = BulkAction(name, index, id_)
        name = action.action
        document = None
        if _ACTIONS_WITH_DOCUMENT[name]:
            if position >= count or (position == count - 1 and not lines[position]):
                raise _malformed(f"The {name} action on line {position} has no document line")
            document = lines[position]
            position += 1
        if len(pairs) == max_items:
            raise PayloadTooLargeError(
                f"the request holds more than {max_items} bulk actions",
                details={"field": "events", "limit": max_items},
            )
        pairs.append((action, document))
    return pairs


def _action(line: bytes, number: int) -> tuple[str, str | None, str | None]:
    try:
        action = parse_json(line)
    except ValueError as exc:
        raise _malformed(f"Line {number} is not a JSON action") from exc
    if type(action) is not dict or len(action) != 1:
        raise _malformed(f"Line {number} must be one action: create, index, update or delete")
    ((name, metadata),) = action.items()
    if name not in _ACTIONS_WITH_DOCUMENT:
        raise _malformed(f"Line {number}: unknown action {name[:32]!r}")
    if type(metadata) is not dict:
        raise _malformed(f"Line {number}: the {name} action's metadata must be an object")
    index, id_ = metadata.get("_index"), metadata.get("_id")
    if index is not None and (type(index) is not str or not index):
        raise _malformed(f"Line {number}: _index must be a non-empty string")
    if id_ is not None:
        if type(id_) is int or type(id_) is float:
            id_ = json.dumps(id_)
        elif type(id_) is not str or not id_:
            raise _malformed(f"Line {number}: _id must be a non-empty string")
    return name, index, id_


def _item(line: bytes, index: str) -> dict[str, Any]:
    try:
        document = parse_json(line)
    except ValueError:
        raise InvalidEventError("the document line is not valid JSON") from None
    if type(document) is not dict:
        raise InvalidEventError("the document must be a JSON object")
    pop = document.pop

    message = None
    for field in _MESSAGE_FIELDS:
        value = document.get(field)
        if type(value) is str and value:
            message = value
            del document[field]
            break
    if message is None:
        raise InvalidEventError("the document has no message (a non-empty string in message, log or msg)")

    item: dict[str, Any] = {"level": _level(document), "message": message, "source": _source(document) or index}
    stamp = pop("@timestamp", None)
    if stamp is not None:
        item["timestamp"] = _timestamp(stamp)
    item["attributes"] = document
    return item


def _level(document: dict[str, Any]) -> str:
    log = document.get("log")
    if type(log) is dict and "level" in log:
        level = level_of(log["level"])
        if level:
            del log["level"]
            if not log:
                del document["log"]
        return level or "INFO"
    for field in ("log.level", "level", "severity"):
        if field in document:
            level = level_of(document[field])
            if level:
                del document[field]
            return level or "INFO"
    return "INFO"


def _source(document: dict[str, Any]) -> str | None:
    service = document.get("service")
    if type(service) is dict:
        name = service.get("name")
        if type(name) is str and name:
            del service["name"]
            if not service:
                del document["service"]
            return name
    for field in ("service.name", "source"):
        name = document.get(field)
        if type(name) is str and name:
            del document[field]
            return name
    return None


def _timestamp(value: Any) -> datetime:
    if type(value) is str:
        if value.isdigit() and value.isascii():  # epoch millis as text, as Elasticsearch reads it
            if len(value) > 20:  # past the year 9999 anyway; int() of a huge text would be slow
                raise InvalidEventError("@timestamp is outside the years 1 to 9999", details={"field": "@timestamp"})
            return from_micros(int(value) * 1000)
        try:
            stamp = datetime.fromisoformat(value)
            return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        except (ValueError, OverflowError):
            raise InvalidEventError(
                "@timestamp is neither ISO 8601 (years 1 to 9999) nor epoch milliseconds",
                details={"field": "@timestamp"},
            ) from None
    if type(value) is int or type(value) is float:
        return from_micros(value * 1000)
    raise InvalidEventError("@timestamp must be a string or epoch milliseconds", details={"field": "@timestamp"})


def _malformed(message: str) -> MalformedRequestError:
    return MalformedRequestError("malformed_bulk", message)
