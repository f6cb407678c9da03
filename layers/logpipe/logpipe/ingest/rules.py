"""The rules an event must pass before it is published: sizes, nesting, characters, numbers and timestamps.

Every limit stays below what Kafka (record size) and PostgreSQL (text and jsonb: no NUL, valid Unicode, finite
numbers) accept, so an accepted event can always be stored. Size limits answer 413, the other rules 422.
"""

import math
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from logpipe.config import Settings
from logpipe.errors import InvalidEventError, PayloadTooLargeError
from logpipe.models import LogEventIn

# jsonb keeps any numeric, but clients and the query API read attributes as JSON numbers: int64 at most.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Rough JSON cost of the punctuation around a value and of the scalars that are not strings.
_SEPARATOR_BYTES = 2
_SCALAR_BYTES = 24


def check_event(event_in: LogEventIn, settings: Settings, now: datetime) -> None:
    """Raise PayloadTooLargeError or InvalidEventError when the event breaks a limit."""
    message_bytes = text_bytes(event_in.message, "message")
    if message_bytes > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"message is {message_bytes} bytes; the limit is {settings.max_message_bytes}",
            details={"field": "message", "limit": settings.max_message_bytes},
        )
    for field, value in (("source", event_in.source), ("traceId", event_in.trace_id), ("spanId", event_in.span_id)):
        if value is not None:
            text_bytes(value, field)
    _check_attributes(event_in.attributes, settings)
    if event_in.timestamp is not None:
        _check_skew(event_in.timestamp, settings, now)


def text_bytes(text: str, field: str) -> int:
    """UTF-8 size of a text PostgreSQL can store: no NUL, no lone surrogate."""
    if text.isascii() and "\x00" not in text:  # most text: its length is its size, and it has no surrogate
        return len(text)
    if "\x00" in text:
        raise InvalidEventError("NUL characters are not allowed in text fields", details={"field": field})
    try:
        return len(text.encode())
    except UnicodeEncodeError as exc:
        raise InvalidEventError(
            "text must be valid Unicode (a lone surrogate such as \\ud800 is not)", details={"field": field}
        ) from exc


def _check_attributes(attributes: dict[str, Any], settings: Settings) -> None:
    if not attributes:
        return
    if len(attributes) > settings.max_attributes:
        raise InvalidEventError(
            f"{len(attributes)} attributes; the limit is {settings.max_attributes}",
            details={"field": "attributes", "limit": settings.max_attributes},
        )
    if not _flat_and_plain(attributes, settings):
        _AttributeWalk(settings).container(attributes, depth=1, path="attributes")


def _flat_and_plain(attributes: dict[str, Any], settings: Settings) -> bool:
    """Whether the attributes pass every rule, decided cheaply for what shippers send most: one level of ASCII
    texts and numbers within the limits (ASCII has no lone surrogate, and its length is its size in bytes). False
    for anything else; the full walk then judges, and names what is wrong. The running total is counted as the
    walk counts it, so both agree on the limit."""
    key_limit, value_limit = settings.max_attribute_key_bytes, settings.max_attribute_value_bytes
    total = 0
    for key, value in attributes.items():
        if len(key) > key_limit or not key.isascii() or "\x00" in key:
            return False
        kind = type(value)
        if kind is str:
            if len(value) > value_limit or not value.isascii() or "\x00" in value:
                return False
            total += len(key) + len(value) + 2 * _SEPARATOR_BYTES
        elif _plain_scalar(kind, value):
            total += len(key) + _SEPARATOR_BYTES + _SCALAR_BYTES
        else:
            return False
    return total <= settings.max_attributes_bytes


def _plain_scalar(kind: type, value: Any) -> bool:
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return math.isfinite(value)
    return kind is bool or value is None


class _AttributeWalk:
    """One pass over the attributes: depth, key and value sizes, characters, numbers, and the running total (every
    key, value and container counted, so attributes within the total always fit in a Kafka record), stopping as
    soon as the total is over its limit (so a huge body costs no more than the limit).
    Field paths are built only for the error message: the walk stays cheap (about 1 µs per attribute)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.total = 0

    def container(self, value: dict[str, Any] | list[Any], depth: int, path: str) -> None:
        if depth > self.settings.max_attribute_depth:
            raise InvalidEventError(
                f"attributes are nested deeper than {self.settings.max_attribute_depth} levels",
                details={"field": path, "limit": self.settings.max_attribute_depth},
            )
        limit = self.settings.max_attributes_bytes
        self.total += _SEPARATOR_BYTES  # its brackets: an empty list or object is not free (it is in Kafka's record)
        if self.total > limit:
            self._over_total()
        if isinstance(value, dict):
            for key, item in value.items():
                self.total += self._text(key, self.settings.max_attribute_key_bytes, path, key, "key")
                self.item(item, depth, path, key)
                if self.total > limit:
                    self._over_total()
        else:
            for index, item in enumerate(value):
                self.item(item, depth, path, index)
                if self.total > limit:
                    self._over_total()

    def item(self, value: Any, depth: int, path: str, name: str | int) -> None:
        kind = type(value)
        if kind is str:
            self.total += self._text(value, self.settings.max_attribute_value_bytes, path, name, "value")
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise InvalidEventError(
                    "integer attributes must fit in 64 bits",
                    details={"field": _join(path, name), "min": INT64_MIN, "max": INT64_MAX},
                )
            self.total += _SCALAR_BYTES
        elif kind is float:
            if not math.isfinite(value):
                raise InvalidEventError("numbers must be finite", details={"field": _join(path, name)})
            self.total += _SCALAR_BYTES
        elif kind is bool or value is None:
            self.total += _SCALAR_BYTES
        elif kind is dict or kind is list:
            self.container(value, depth + 1, _join(path, name))
        else:  # JSON yields nothing else; guards callers that build attributes in code
            raise InvalidEventError(f"unsupported attribute type {kind.__name__}", details={"field": _join(path, name)})

    @staticmethod
    def _text(text: str, limit: int, path: str, name: str | int, what: str) -> int:
        try:
            size = text_bytes(text, "")
        except InvalidEventError as error:
            raise InvalidEventError(error.message, details={"field": _join(path, name)}) from error
        if size > limit:
            raise PayloadTooLargeError(
                f"an attribute {what} is {size} bytes; the limit is {limit}",
                details={"field": _join(path, name), "limit": limit},
            )
        return size + _SEPARATOR_BYTES

    def _over_total(self) -> None:
        raise PayloadTooLargeError(
            f"attributes are over {self.settings.max_attributes_bytes} bytes",
            details={"field": "attributes", "limit": self.settings.max_attributes_bytes},
        )


@lru_cache(maxsize=4)
def _accepted_window(now: datetime, past_seconds: int, future_seconds: int) -> tuple[datetime, datetime]:
    """The timestamps accepted at `now` (a batch's items share their `now`: computed once per batch)."""
    return now - timedelta(seconds=past_seconds), now + timedelta(seconds=future_seconds)


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name[:64]}"


def _check_skew(timestamp: datetime, settings: Settings, now: datetime) -> None:
    earliest, latest = _accepted_window(now, settings.max_past_skew_seconds, settings.max_future_skew_seconds)
    if not earliest <= timestamp <= latest:
        raise InvalidEventError(
            "timestamp is outside the accepted window",
            details={"field": "timestamp", "earliest": earliest.isoformat(), "latest": latest.isoformat()},
        )
