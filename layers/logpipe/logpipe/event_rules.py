"""The rules an event must pass before it is published: sizes, nesting, characters, numbers and timestamps.

Every limit stays below what Kafka (record size) and PostgreSQL (text and jsonb: no NUL, valid Unicode, finite
numbers) accept, so an accepted event can always be stored. Size limits answer 413, the other rules 422.
"""

import math
from datetime import datetime, timedelta
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
    _AttributeWalk(settings).measure(attributes, depth=1, path="attributes")


class _AttributeWalk:
    """One pass over the attributes: depth, key and value sizes, characters, numbers, and the running total,
    stopping as soon as the total is over its limit (so a huge body costs no more than the limit)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.total = 0

    def measure(self, value: Any, depth: int, path: str) -> None:
        if isinstance(value, str):
            self._add(self._value_bytes(value, path) + _SEPARATOR_BYTES, path)
        elif isinstance(value, dict):
            self._enter(depth, path)
            for key, item in value.items():
                key_path = f"{path}.{key}" if len(key) <= 64 else f"{path}.{key[:64]}…"
                self._add(self._key_bytes(key, key_path) + _SEPARATOR_BYTES * 2, key_path)
                self.measure(item, depth + 1, key_path)
        elif isinstance(value, list):
            self._enter(depth, path)
            for index, item in enumerate(value):
                self.measure(item, depth + 1, f"{path}[{index}]")
        elif isinstance(value, bool) or value is None:
            self._add(_SEPARATOR_BYTES + 4, path)
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InvalidEventError(
                    "integer attributes must fit in 64 bits",
                    details={"field": path, "min": INT64_MIN, "max": INT64_MAX},
                )
            self._add(_SCALAR_BYTES, path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidEventError("numbers must be finite", details={"field": path})
            self._add(_SCALAR_BYTES, path)
        else:  # JSON yields nothing else; guards callers that build attributes in code
            raise InvalidEventError(f"unsupported attribute type {type(value).__name__}", details={"field": path})

    def _enter(self, depth: int, path: str) -> None:
        if depth > self.settings.max_attribute_depth:
            raise InvalidEventError(
                f"attributes are nested deeper than {self.settings.max_attribute_depth} levels",
                details={"field": path, "limit": self.settings.max_attribute_depth},
            )

    def _key_bytes(self, key: str, path: str) -> int:
        size = text_bytes(key, path)
        if size > self.settings.max_attribute_key_bytes:
            raise PayloadTooLargeError(
                f"an attribute key is {size} bytes; the limit is {self.settings.max_attribute_key_bytes}",
                details={"field": path, "limit": self.settings.max_attribute_key_bytes},
            )
        return size

    def _value_bytes(self, value: str, path: str) -> int:
        size = text_bytes(value, path)
        if size > self.settings.max_attribute_value_bytes:
            raise PayloadTooLargeError(
                f"an attribute value is {size} bytes; the limit is {self.settings.max_attribute_value_bytes}",
                details={"field": path, "limit": self.settings.max_attribute_value_bytes},
            )
        return size

    def _add(self, size: int, path: str) -> None:
        self.total += size
        if self.total > self.settings.max_attributes_bytes:
            raise PayloadTooLargeError(
                f"attributes are over {self.settings.max_attributes_bytes} bytes",
                details={"field": "attributes", "limit": self.settings.max_attributes_bytes},
            )


def _check_skew(timestamp: datetime, settings: Settings, now: datetime) -> None:
    earliest = now - timedelta(seconds=settings.max_past_skew_seconds)
    latest = now + timedelta(seconds=settings.max_future_skew_seconds)
    if not earliest <= timestamp <= latest:
        raise InvalidEventError(
            "timestamp is outside the accepted window",
            details={"field": "timestamp", "earliest": earliest.isoformat(), "latest": latest.isoformat()},
        )
