import random
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from logpipe.config import Settings
from logpipe.edge.answers import status_for
from logpipe.errors import InvalidEventError, PayloadTooLargeError
from logpipe.ingest.records import RecordMaker
from logpipe.ingest.rules import PlainLimits, check_event, plain_items
from logpipe.models import Level, LogEvent, LogEventFields

NOW = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
EVENT_ID = UUID("0b6f2f0e-3c1e-4f0e-9d55-0d6a2f1a9a01")
SETTINGS = Settings(kafka_bootstrap_servers="k:9092", database_url="postgresql://x", redis_url="redis://x")
FIELDS = TypeAdapter(LogEventFields)
SHIPPED = {
    "level": "warn",
    "message": "GET /api/orders/42 answered 503 after 1.2 s",
    "source": "checkout",
    "timestamp": "2026-11-27T11:59:00.5+02:00",
    "attributes": {"http.status_code": 503, "duration_ms": 1200.5, "retry": False, "user.id": "u-1", "none": None},
    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    "spanId": "00f067aa0ba902b7",
}


def record_of(item: dict, settings: Settings = SETTINGS, event_id: UUID | str = EVENT_ID):
    """The record as the batch path builds it: the quick path when the item passes the plain schema."""
    try:
        fields, plain = plain_items(settings).validate_python([item])[0], True
    except ValidationError:
        fields, plain = FIELDS.validate_python(item), False
    return RecordMaker(settings, NOW)(fields, "acme", event_id, plain)


@pytest.mark.parametrize(
    "item",
    [
        SHIPPED,
        {"level": "INFO", "message": "no timestamp, no attributes", "source": "s"},
        {"level": "DEBUG", "message": "utc", "source": "s", "timestamp": "2026-11-27T09:00:00Z"},
        {"level": "ERROR", "message": "naïve ünïcode ✓", "source": "søurce", "attributes": {"clé": "välue ✓"}},
        {"level": "FATAL", "message": "nested", "source": "s", "attributes": {"a": {"b": [1, 2.5, {"c": None}]}}},
        {"level": "info", "message": 'quotes " and \\ and \n', "source": "s", "attributes": {"k": "tab\t"}},
    ],
)
@pytest.mark.parametrize("event_id", [EVENT_ID, str(EVENT_ID)])
def test_the_record_is_the_json_of_the_normalized_event_the_consumer_reads(item: dict, event_id) -> None:
    record = record_of(item, event_id=event_id)

    fields = FIELDS.validate_python(item)
    expected = LogEvent(
        id=EVENT_ID,
        organization_id="acme",
        level=fields["level"],
        message=fields["message"],
        source=fields["source"],
        timestamp=fields.get("timestamp", NOW).astimezone(UTC),
        received_at=NOW,
        attributes=fields.get("attributes", {}),
        trace_id=fields.get("traceId"),
        span_id=fields.get("spanId"),
    )
    assert record.value == expected.model_dump_json(by_alias=True).encode()
    assert (record.organization_id, record.id) == ("acme", str(EVENT_ID))
    assert LogEvent.model_validate_json(record.value) == expected


def test_a_timestamp_with_an_offset_is_written_in_utc() -> None:
    event = LogEvent.model_validate_json(record_of(SHIPPED).value)
    assert event.timestamp == datetime(2026, 11, 27, 9, 59, 0, 500000, tzinfo=UTC)
    assert b'"timestamp":"2026-11-27T09:59:00.500000Z"' in record_of(SHIPPED).value


@pytest.mark.parametrize(
    ("attributes", "error", "field"),
    [
        ({"k": "v\x00"}, InvalidEventError, "attributes.k"),
        ({"k\x00": "v"}, InvalidEventError, "attributes.k\x00"),
        ({"k": "\ud800"}, InvalidEventError, "attributes.k"),
        ({"k": 2**63}, InvalidEventError, "attributes.k"),
        ({"k": -(2**63) - 1}, InvalidEventError, "attributes.k"),
        ({"k": float("nan")}, InvalidEventError, "attributes.k"),
        ({"k": float("inf")}, InvalidEventError, "attributes.k"),
        ({"k" * 257: "v"}, PayloadTooLargeError, "attributes." + "k" * 64),
        ({"k": "v" * 16_385}, PayloadTooLargeError, "attributes.k"),
        ({f"k{n}": n for n in range(65)}, InvalidEventError, "attributes"),
        (
            {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
            InvalidEventError,
            "attributes.a.b.c.d.e.f.g.h",
        ),
    ],
)
def test_attributes_breaking_a_rule_are_refused_naming_the_field(attributes: dict, error: type, field: str) -> None:
    with pytest.raises(error) as raised:
        record_of({**SHIPPED, "attributes": attributes})
    assert raised.value.details["field"] == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"message": "a\x00b"}, "message"), ({"source": "s\x00"}, "source"), ({"traceId": "\x00"}, "traceId")],
)
def test_nul_in_texts_is_refused_before_it_reaches_postgresql(overrides: dict, field: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        record_of({**SHIPPED, **overrides})
    assert raised.value.details["field"] == field


def test_a_message_over_its_limit_in_bytes_is_413() -> None:
    settings = SETTINGS.model_copy(update={"max_message_bytes": 64})
    with pytest.raises(PayloadTooLargeError) as raised:
        record_of({**SHIPPED, "message": "é" * 33}, settings)  # 66 bytes, 33 characters
    assert status_for(raised.value) == 413


@pytest.mark.parametrize("offset", [timedelta(days=-8), timedelta(minutes=6)])
def test_timestamps_outside_the_skew_window_are_refused(offset: timedelta) -> None:
    with pytest.raises(InvalidEventError, match="timestamp"):
        record_of({**SHIPPED, "timestamp": (NOW + offset).astimezone(timezone(timedelta(hours=3))).isoformat()})


def test_what_shippers_send_passes_on_its_json_without_the_walk() -> None:
    plain_items(SETTINGS).validate_python([SHIPPED])
    record = record_of(SHIPPED)
    assert PlainLimits.of(SETTINGS).admits(record.value, len(SHIPPED["attributes"]))


@pytest.mark.parametrize("attributes", [{f"k{n}": True for n in range(40)}, {"a": [1] * 100}], ids=["flat", "nested"])
def test_the_running_total_counts_each_scalar_above_its_json(attributes: dict) -> None:
    """40 booleans or 100 digits: the event's JSON is within 900 bytes, its attributes over 900 as the walk counts."""
    settings = SETTINGS.model_copy(update={"max_attributes_bytes": 900})
    assert len(record_of({**SHIPPED, "attributes": {}}).value) + len(to_json(attributes)) < 900
    with pytest.raises(PayloadTooLargeError, match="attributes are over 900 bytes"):
        record_of({**SHIPPED, "attributes": attributes}, settings)


TIGHT = {  # every limit within reach of the generated events
    "max_message_bytes": 300,
    "max_attributes": 6,
    "max_attribute_depth": 2,
    "max_attribute_key_bytes": 24,
    "max_attribute_value_bytes": 200,
    "max_attributes_bytes": 400,
}
NESTED = {  # room for nested attributes on the quick path: depth and the running total are what is tested
    **TIGHT,
    "max_message_bytes": 2000,
    "max_attribute_depth": 3,
    "max_attribute_value_bytes": 2000,
    "max_attributes_bytes": 6000,
}


@pytest.mark.parametrize("limits", [TIGHT, NESTED], ids=["tight", "nested"])
def test_the_check_on_the_json_never_passes_an_event_the_walk_refuses(limits: dict) -> None:
    """Random events near every limit: whenever the quick check passes one, the walk passes it too."""
    rng = random.Random(15)
    settings = SETTINGS.model_copy(update=limits)
    texts = ["", "a", "é", "✓" * 3, "\x00", "\\u0000", "x" * 40, "y" * 120, "z" * 250, "\ud800", "{[", "]}"]
    scalars = [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 1.5, float("inf"), float("nan"), True, None]
    passed = nested = 0
    for _ in range(4000):
        attributes = {}
        for _ in range(rng.randint(0, 8)):
            key = rng.choice(texts[1:9]) + str(rng.randint(0, 99))
            kind = rng.random()
            if kind < 0.45:
                attributes[key] = rng.choice(texts)
            elif kind < 0.8:
                attributes[key] = rng.choice(scalars)
            elif kind < 0.9:
                leaf = rng.choice(texts + scalars)
                attributes[key] = {"n": leaf} if kind < 0.85 else {"n": {"m": [leaf]}}
            else:  # many small scalars: the running total counts each far above its JSON
                attributes[key] = [rng.randint(0, 9) for _ in range(rng.randint(1, 80))]
        record = {"message": rng.choice(texts[1:]) * rng.randint(1, 3), "source": "s", "attributes": attributes}
        value = _json(record)
        if _plain(record, settings) and PlainLimits.of(settings).admits(value, len(attributes)):
            passed += 1
            nested += any(isinstance(value, (dict, list)) for value in attributes.values())
            check_event(record, settings)  # must not raise
    assert passed > 150, "the quick check should pass the plain events among them"
    assert nested > 20 or limits is TIGHT, "and nested ones"


def _plain(record: dict, settings: Settings) -> bool:
    try:
        plain_items(settings).validate_python([{"level": "INFO", **record}])
    except ValidationError:
        return False
    return True


def _json(record: dict) -> bytes:
    from pydantic_core import PydanticSerializationError, to_json

    try:
        return to_json({"level": Level.INFO, "timestamp": NOW, **record})
    except PydanticSerializationError:
        return b""
