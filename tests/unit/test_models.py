import pytest
from pydantic import TypeAdapter, ValidationError

from logpipe.models import Level, LogEvent, LogEventFields, LogEventIn

SEED_BODY = {"organizationId": "acme", "level": "INFO", "message": "User logged in", "source": "auth-service"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("info", Level.INFO),
        ("Warning", Level.WARN),
        ("warn", Level.WARN),
        (" fatal ", Level.FATAL),
        ("TRACE", Level.TRACE),
    ],
)
def test_levels_are_case_insensitive_and_warning_means_warn(given: str, expected: Level) -> None:
    assert LogEventIn.model_validate({**SEED_BODY, "level": given}).level is expected


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="level"):
        LogEventIn.model_validate({**SEED_BODY, "level": "LOUD"})


# organizationId may come from the API key instead; logpipe.ingest.intake requires it when no key names one.
@pytest.mark.parametrize("missing", ["level", "message", "source"])
def test_seed_fields_are_required(missing: str) -> None:
    body = {key: value for key, value in SEED_BODY.items() if key != missing}
    with pytest.raises(ValidationError, match=missing):
        LogEventIn.model_validate(body)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        LogEventIn.model_validate({**SEED_BODY, "severity": "high"})


def test_timestamp_must_carry_a_timezone() -> None:
    with pytest.raises(ValidationError, match="timestamp"):
        LogEventIn.model_validate({**SEED_BODY, "timestamp": "2026-11-27T10:00:00"})


def test_organization_id_rejects_spaces_and_slashes() -> None:
    with pytest.raises(ValidationError, match="organizationId"):
        LogEventIn.model_validate({**SEED_BODY, "organizationId": "acme/../other"})


def test_normalized_event_round_trips_through_its_kafka_json(sample_event) -> None:
    import base64

    record = sample_event("consumer_msk_batch")["records"]["log-events-0"][0]
    event = LogEvent.model_validate_json(base64.b64decode(record["value"]))
    assert LogEvent.model_validate_json(event.model_dump_json(by_alias=True)) == event
    assert '"organizationId":"acme"' in event.model_dump_json(by_alias=True)


def test_batch_items_are_validated_by_the_same_schema_as_the_single_event_body() -> None:
    """LogEventFields (one native call per batch) and LogEventIn (the single-event body) must not drift apart."""
    body_schema = LogEventIn.model_json_schema(by_alias=True)
    item_schema = TypeAdapter(LogEventFields).json_schema()
    body_fields = {
        name: {k: v for k, v in field.items() if k != "default"} for name, field in body_schema["properties"].items()
    }
    assert item_schema["properties"] == body_fields  # the body's optional fields have defaults, the items' none
    assert item_schema["required"] == body_schema["required"]
    assert item_schema["additionalProperties"] is False
    assert body_schema["additionalProperties"] is False
