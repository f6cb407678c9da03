"""What the three shipper decoders share: the level-name table, the item-count bound, JSON reading and the
conversion of epoch counts to datetimes.

Level names (case-insensitive, surrounding blanks ignored), used by Loki labels, Elasticsearch documents and OTLP
`severity_text` alike:

| level | names                                                                        |
|-------|------------------------------------------------------------------------------|
| TRACE | trace, trc, finest, finer                                                    |
| DEBUG | debug, dbg, dbug, fine, verbose                                              |
| INFO  | info, inf, information, informational, notice                                |
| WARN  | warn, warning, wrn                                                           |
| ERROR | error, err, eror, severe                                                     |
| FATAL | fatal, crit, critical, panic, emerg, emergency, alert                        |

A text that is none of these is not a level: each decoder then answers INFO and keeps the text in the item's
attributes (see each module).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import from_json

from logpipe.errors import InvalidEventError, MalformedRequestError, PayloadTooLargeError

_NAMES = {
    "TRACE": ("trace", "trc", "finest", "finer"),
    "DEBUG": ("debug", "dbg", "dbug", "fine", "verbose"),
    "INFO": ("info", "inf", "information", "informational", "notice"),
    "WARN": ("warn", "warning", "wrn"),
    "ERROR": ("error", "err", "eror", "severe"),
    "FATAL": ("fatal", "crit", "critical", "panic", "emerg", "emergency", "alert"),
}
LEVEL_NAMES: dict[str, str] = {name: level for level, names in _NAMES.items() for name in names}
# What level_of finds in one look-up: the names as written in lower case, upper case and capitalized.
_SPELLINGS = {
    spelling: level for name, level in LEVEL_NAMES.items() for spelling in (name, name.upper(), name.capitalize())
}
# Below 2**32 seconds (the year 2106) a float of seconds is within a quarter of a microsecond of the true instant,
# so datetime.fromtimestamp, twice as fast as adding a timedelta, rounds back to the same microsecond.
_EXACT_MICROS = 2**32 * 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def level_of(text: Any) -> str | None:
    """The logpipe level a level name means, or None when `text` is not a known name (or not a string)."""
    if type(text) is not str:
        return None
    level = _SPELLINGS.get(text)
    if level is None:
        level = LEVEL_NAMES.get(text.strip().lower())
    return level


def check_count(count: int, max_items: int, what: str) -> None:
    """Refuse a request holding more than `max_items` records (413) before any record is mapped."""
    if count > max_items:
        raise PayloadTooLargeError(
            f"the request holds {count} {what}; the limit is {max_items}",
            details={"field": "events", "limit": max_items},
        )


def parse_json(data: str | bytes) -> Any:
    """JSON by pydantic-core's parser (about three times as fast as json.loads on small documents): strict UTF-8, no
    NaN or Infinity, no lone surrogate, nesting bounded (200 levels); ValueError for anything else."""
    return from_json(data, allow_inf_nan=False)


def load_json(body: bytes, what: str) -> Any:
    """The JSON document of a whole body; MalformedRequestError (400) when parse_json refuses it."""
    try:
        return parse_json(body)
    except ValueError as exc:
        raise MalformedRequestError("malformed_json", f"The {what} body is not valid JSON") from exc


def from_nanos(nanos: int) -> datetime:
    """An aware UTC datetime from nanoseconds since the epoch, truncated to the microsecond.

    Raises InvalidEventError when the instant is outside what a datetime holds (years 1 to 9999).
    """
    micros = nanos // 1000
    if 0 <= micros < _EXACT_MICROS:
        return datetime.fromtimestamp(micros / 1e6, UTC)
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidEventError(
            "the timestamp is outside the years 1 to 9999", details={"field": "timestamp"}
        ) from None


def from_micros(micros: int | float) -> datetime:
    """An aware UTC datetime from microseconds since the epoch (InvalidEventError when out of range)."""
    if type(micros) is int and 0 <= micros < _EXACT_MICROS:
        return datetime.fromtimestamp(micros / 1e6, UTC)
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except (OverflowError, ValueError):
        raise InvalidEventError(
            "the timestamp is outside the years 1 to 9999", details={"field": "timestamp"}
        ) from None
