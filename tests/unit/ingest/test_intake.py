from datetime import UTC, datetime, timedelta
from uuid import RFC_4122, UUID

import pytest

from logpipe.config import Settings
from logpipe.edge.answers import status_for
from logpipe.errors import InvalidEventError, OrganizationMismatchError, PayloadTooLargeError
from logpipe.ingest.intake import _DerivedIds, derived_event_id, owning_organization
from logpipe.ingest.records import event_record
from logpipe.models import LogEvent, LogEventIn

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SETTINGS = Settings(
    kafka_bootstrap_servers="k:9092",
    database_url="postgresql://x",
    redis_url="redis://x",
    max_message_bytes=64,
    max_attributes=2,
    max_past_skew_seconds=3600,
    max_future_skew_seconds=60,
)


EVENT_ID = UUID("0b6f2f0e-3c1e-4f0e-9d55-0d6a2f1a9a01")


def event_in(**overrides) -> LogEventIn:
    body = {"organizationId": "acme", "level": "info", "message": "hello", "source": "svc", **overrides}
    return LogEventIn.model_validate(body)


def normalize_event(event: LogEventIn, settings: Settings, now: datetime) -> LogEvent:
    """The event as the consumer reads its record."""
    record = event_record(event.model_dump(by_alias=True), "acme", EVENT_ID, now, settings)
    return LogEvent.model_validate_json(record.value)


def test_fills_in_organization_id_and_timestamp() -> None:
    event = normalize_event(event_in(organizationId=None), SETTINGS, NOW)
    assert (event.organization_id, event.id) == ("acme", EVENT_ID)
    assert event.timestamp == NOW
    assert event.received_at == NOW


def test_converts_timestamps_to_utc() -> None:
    event = normalize_event(event_in(timestamp="2026-11-27T11:30:00+02:00"), SETTINGS, NOW)
    assert event.timestamp == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


def test_message_over_the_byte_limit_is_413() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_event(event_in(message="é" * 33), SETTINGS, NOW)  # 66 bytes, 33 characters
    assert status_for(caught.value) == 413


def test_too_many_attributes_is_422() -> None:
    with pytest.raises(InvalidEventError, match="attributes"):
        normalize_event(event_in(attributes={"a": 1, "b": 2, "c": 3}), SETTINGS, NOW)


@pytest.mark.parametrize("offset", [timedelta(hours=-2), timedelta(minutes=5)])
def test_timestamps_outside_the_skew_window_are_refused(offset: timedelta) -> None:
    with pytest.raises(InvalidEventError, match="timestamp"):
        normalize_event(event_in(timestamp=(NOW + offset).isoformat()), SETTINGS, NOW)


@pytest.mark.parametrize("overrides", [{"message": "a\x00b"}, {"attributes": {"k": "v\x00"}}, {"source": "s\x00"}])
def test_nul_characters_are_refused_before_they_reach_postgresql(overrides: dict) -> None:
    with pytest.raises(InvalidEventError, match="NUL"):
        normalize_event(event_in(**overrides), SETTINGS, NOW)


def test_without_an_api_key_the_event_must_name_its_organization() -> None:
    with pytest.raises(InvalidEventError, match="organizationId"):
        owning_organization(None, organization_id=None)
    assert owning_organization("acme", organization_id=None) == "acme"


def test_with_an_api_key_the_event_takes_its_organization_and_may_not_name_another() -> None:
    assert owning_organization(None, organization_id="acme") == "acme"
    assert owning_organization("acme", organization_id="acme") == "acme"
    with pytest.raises(OrganizationMismatchError):
        owning_organization("acme", organization_id="globex")


def test_derived_ids_are_stable_and_never_collide_across_organization_key_boundaries() -> None:
    assert derived_event_id("acme", "k1") == derived_event_id("acme", "k1")
    # The same concatenation "a:b:c" split differently must give different ids.
    assert derived_event_id("a:b", "c") != derived_event_id("a", "b:c")


def test_batch_ids_are_stable_distinct_per_item_and_uuid5_shaped() -> None:
    ids, again, other_key = _DerivedIds("sha256:ab"), _DerivedIds("sha256:ab"), _DerivedIds("sha256:ac")
    batch = [ids("acme", index) for index in range(3)]
    assert batch == [again("acme", index) for index in range(3)]
    assert len({*batch, other_key("acme", 0), ids("globex", 0), str(derived_event_id("acme", "sha256:ab"))}) == 6
    assert all(UUID(event_id).version == 5 and UUID(event_id).variant == RFC_4122 for event_id in batch)
    assert batch[2].endswith("00000002")
