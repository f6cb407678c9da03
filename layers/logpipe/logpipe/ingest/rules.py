"""The rules an event must pass before it is published: sizes, nesting, characters, numbers and timestamps.

Every limit stays below what Kafka (record size) and PostgreSQL (text and jsonb: no NUL, valid Unicode, finite
numbers) accept, so an accepted event can always be stored. Size limits answer 413, the other rules 422.

Two ways to decide, with one outcome. A batch's items are validated against `plain_items` (LogEventFields whose
attributes hold only texts, int64s, finite floats, booleans and nulls, in objects and lists, within the count and
key rules: pydantic-core checks that for the whole batch in one call); the record of such an event passes on
`PlainLimits.admits`, a few native checks of its serialized JSON (logpipe.ingest.records serializes every event
once). Any other event is walked field by field by `check_event`, which raises the error that names what is wrong.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, InstanceOf, StrictBool, StrictInt, StrictStr, TypeAdapter, with_config
from typing_extensions import TypeAliasType, TypedDict

from logpipe.config import Settings
from logpipe.errors import InvalidEventError, PayloadTooLargeError
from logpipe.models import Level, LevelName, LogEventFields

# jsonb keeps any numeric, but clients and the query API read attributes as JSON numbers: int64 at most.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Rough JSON cost of the punctuation around a value and of the scalars that are not strings.
_SEPARATOR_BYTES = 2
_SCALAR_BYTES = 24
_UTF8_BYTES_PER_CHARACTER = 4  # at most
# A scalar attribute value the quick path takes, as it is (no coercion: a strict float would take an int past int64
# and turn it into a float): a text, an int64, a finite float, a boolean or null.
_PlainScalar = (
    StrictStr
    | Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
    | Annotated[InstanceOf[float], Field(allow_inf_nan=False)]
    | StrictBool
    | None
)


# The level: a level name as it is (what the shippers' decoders give) taken by pydantic-core alone, any other
# spelling through Level.parse (a Python call per item). The errors of this schema are never shown: an item it
# refuses is validated again by LogEventFields', whose errors are.
_LEVEL_FIRST_AS_IS = Annotated[Level | LevelName, Field(union_mode="left_to_right")]


def plain_items(settings: Settings) -> TypeAdapter[list[dict[str, Any]]]:
    """The validator of a batch whose items all have plain attributes (see the module's docstring)."""
    return _plain_items(settings.max_attributes, settings.max_attribute_key_bytes // _UTF8_BYTES_PER_CHARACTER)


@lru_cache(maxsize=4)
def _plain_items(max_attributes: int, max_key_characters: int) -> TypeAdapter[list[dict[str, Any]]]:
    key = Annotated[str, Field(max_length=max_key_characters)]  # n characters are at most 4n bytes of UTF-8
    # Recursive: the strings name the alias itself (pydantic resolves them from this frame).
    PlainValue = TypeAliasType("PlainValue", _PlainScalar | list["PlainValue"] | dict[key, "PlainValue"])
    attributes = Annotated[dict[key, PlainValue], Field(max_length=max_attributes)]
    fields = {**LogEventFields.__annotations__, "level": _LEVEL_FIRST_AS_IS, "attributes": NotRequired[attributes]}
    item = with_config(ConfigDict(extra="forbid"))(TypedDict("PlainLogEventFields", fields))  # type: ignore[operator]
    return TypeAdapter(list[item])


@dataclass(frozen=True, slots=True)
class PlainLimits:
    """The bounds `admits` decides on, read from the settings once per request."""

    text_bytes: int  # the smallest limit of a text: the message's or an attribute value's
    attributes_bytes: int
    attribute_depth: int

    @classmethod
    def of(cls, settings: Settings) -> "PlainLimits":
        return cls(
            min(settings.max_message_bytes, settings.max_attribute_value_bytes),
            settings.max_attributes_bytes,
            settings.max_attribute_depth,
        )

    def admits(self, value: bytes, attribute_count: int) -> bool:
        """Whether an event whose attributes are plain (`plain_items` passed it) passes every rule but the
        timestamp's, decided on `value`, its record's JSON. False for an empty `value` (a lone surrogate cannot be
        serialized), and whenever in doubt: check_event then judges.

        - Sizes: each text of the event is a part of its JSON, so a JSON within the smallest size limit has every
          text within its own. The attributes' running total, as the walk counts it, exceeds their JSON by at most
          _SCALAR_BYTES per scalar: per attribute when they are flat, per two bytes of JSON at worst when nested.
        - Nesting: the event's JSON opens one object, and each container of the attributes one more `{` or `[` (a
          text holding brackets only costs the walk).
        - Characters: a NUL shows in JSON as \\u0000 (a text holding those six characters only costs the walk).

        Each check looks for one byte first (`find` of one byte is a memchr; most events hold no backslash and no
        bracket), and counts only when it must.
        """
        size = len(value)
        if not 0 < size <= self.text_bytes:
            return False
        if value.find(b"\\") >= 0 and b"\\u0000" in value:
            return False
        # The first `{` after the event's own opens the attributes (or is in a text: then the counts decide).
        attributes = value.find(b"{", 1)
        if value.find(b"[") < 0 and (attributes < 0 or value.find(b"{", attributes + 1) < 0):  # flat, or none
            return size + _SCALAR_BYTES * attribute_count <= self.attributes_bytes
        containers = value.count(b"{") + value.count(b"[") - 1
        return containers <= self.attribute_depth and size * (1 + _SCALAR_BYTES // 2) <= self.attributes_bytes


def check_event(record: Mapping[str, Any], settings: Settings) -> None:
    """Raise PayloadTooLargeError or InvalidEventError when the event (its record's fields) breaks a limit."""
    message_bytes = text_bytes(record["message"], "message")
    if message_bytes > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"message is {message_bytes} bytes; the limit is {settings.max_message_bytes}",
            details={"field": "message", "limit": settings.max_message_bytes},
        )
    for field in ("source", "traceId", "spanId"):
        if record.get(field) is not None:
            text_bytes(record[field], field)
    _check_attributes(record.get("attributes") or {}, settings)


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """The timestamps accepted at one moment (a request's items share it: computed once per request)."""

    earliest: datetime
    latest: datetime

    @classmethod
    def at(cls, now: datetime, settings: Settings) -> "TimestampWindow":
        return cls(
            now - timedelta(seconds=settings.max_past_skew_seconds),
            now + timedelta(seconds=settings.max_future_skew_seconds),
        )

    def check(self, timestamp: datetime) -> None:
        """Raise InvalidEventError when the timestamp is outside the window."""
        if not self.earliest <= timestamp <= self.latest:
            raise InvalidEventError(
                "timestamp is outside the accepted window",
                details={
                    "field": "timestamp",
                    "earliest": self.earliest.isoformat(),
                    "latest": self.latest.isoformat(),
                },
            )


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
    _AttributeWalk(settings).container(attributes, depth=1, path="attributes")


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


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name[:64]}"
